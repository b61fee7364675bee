"""The ``timm`` student family: any timm model, with a fresh linear head.

Features are timm's pre-logits, ``forward_head(forward_features(x), pre_logits=True)``; logits
come from a fresh ``reset_classifier(num_classes)`` head kept as ``self.head``. Preprocessing
comes from timm's data config for the model (input size, mean/std, interpolation, crop). The
paper's students: ``vit_small_patch16_224`` (ViT-S/16), ``mixer_b16_224`` (Mixer-B/16),
``resnet50`` (ResNet-50).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.students.base import Student
from fusion_aft.students.inputs import field_of, to_pil
from fusion_aft.students.registry import register_student

log = logging.getLogger(__name__)

_WEIGHT_SOURCES = ("url", "hf_hub_id", "file", "state_dict")


class TimmPipeline:
    """Record → PIL (converted to the model's channels) → timm's eval transform."""

    def __init__(self, transform: Any, in_chans: int, field: str = "image") -> None:
        self.transform = transform
        self.mode = "L" if in_chans == 1 else "RGB"
        self.field = field

    def __call__(self, record: Record) -> torch.Tensor:
        img = to_pil(field_of(record, self.field), where=f"field '{self.field}'")
        return self.transform(img.convert(self.mode))


def _check_model_name(model_name: str) -> None:
    import timm

    if timm.is_model(model_name.split(".")[0]):
        return
    from fusion_aft.registry import close_matches

    near = close_matches(model_name, timm.list_models()) or timm.list_models(f"*{model_name}*")[:5]
    hint = f"; close matches: {', '.join(near)}" if near else "; list them with timm.list_models('*pattern*')"
    raise UserInputError(f"unknown timm model '{model_name}'{hint}")


@register_student("timm")
class TimmStudent(Student):
    """Any timm image model as a student.

    Args:
        num_classes: output classes.
        model_name: a timm model name, optionally with a weight tag (``resnet50.a1_in1k``).
        pretrained: load pretrained weights (from the hub, or ``pretrained_file``). If they
            cannot be loaded, :class:`MissingWeightsError` is raised; weights are never silently
            random. ``False`` gives a random initialisation.
        pretrained_file: a local weights file used instead of the hub.
        image_size: input resolution; sets the preprocessing size and, for models with a fixed
            input size (ViT, Mixer), the model's ``img_size``.
        in_chans: input channels (3; 1 for grey models).
        drop_rate: dropout before the head (timm's ``drop_rate``).
        model_kwargs: extra keyword arguments for ``timm.create_model``.
        data_config: explicit preprocessing (timm data-config keys); default from the model.

    Example::

        s = fusion_aft.students.create("timm", 10, model_name="vit_small_patch16_224")
    """

    def __init__(
        self,
        num_classes: int,
        model_name: str,
        pretrained: bool = True,
        pretrained_file: str | None = None,
        image_size: int | None = None,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        model_kwargs: dict[str, Any] | None = None,
        data_config: dict[str, Any] | None = None,
        field: str = "image",
    ) -> None:
        super().__init__()
        import timm
        from timm.data import create_transform, resolve_data_config

        _check_model_name(model_name)
        self.model_name = model_name
        self.pretrained = bool(pretrained)
        self.pretrained_file = pretrained_file
        self.image_size = int(image_size) if image_size else None
        self.in_chans = int(in_chans)
        self.drop_rate = float(drop_rate)
        self.model_kwargs = dict(model_kwargs or {})
        self.input_field = field
        self.num_classes = int(num_classes)

        kwargs: dict[str, Any] = dict(self.model_kwargs, in_chans=self.in_chans, drop_rate=self.drop_rate)
        base_cfg = timm.models.get_pretrained_cfg(model_name.split(".")[0]) if "." not in model_name else None
        if self.image_size and _fixed_input_size(model_name, base_cfg):
            kwargs.setdefault("img_size", self.image_size)
        if pretrained_file:
            kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
        self.model = self._create(timm, kwargs)
        self.model.reset_classifier(self.num_classes)
        classifier = self.model.get_classifier()
        self.feature_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)
        if isinstance(classifier, nn.Linear) and classifier.in_features == self.feature_dim:
            self.head = classifier
        else:
            self.head = nn.Linear(self.feature_dim, self.num_classes)
        self.model.reset_classifier(0)

        if data_config is None:
            args = (
                {"input_size": (self.in_chans, self.image_size, self.image_size)} if self.image_size else {}
            )
            data_config = resolve_data_config(args, model=self.model)
            if self.in_chans == 1:
                data_config["mean"] = (float(sum(data_config["mean"]) / len(data_config["mean"])),)
                data_config["std"] = (float(sum(data_config["std"]) / len(data_config["std"])),)
        self.data_config = {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()}
        transform_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in self.data_config.items()}
        self.pipeline = TimmPipeline(
            create_transform(**transform_cfg, is_training=False), self.in_chans, field
        )

    def _create(self, timm: Any, kwargs: dict[str, Any]) -> nn.Module:
        if not self.pretrained:
            return timm.create_model(self.model_name, pretrained=False, **kwargs)
        fix = (
            "connect to the Hugging Face hub (unset HF_HUB_OFFLINE), pass pretrained_file='<weights file>', "
            "or pretrained=False for a random initialisation"
        )
        try:
            model = timm.create_model(self.model_name, pretrained=True, **kwargs)
        except Exception as exc:  # hub unreachable, no cached file, bad file
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise MissingWeightsError(
                f"pretrained weights for timm model '{self.model_name}' could not be loaded "
                f"({type(exc).__name__}: {first}); {fix}"
            ) from None
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if not any(cfg.get(k) for k in _WEIGHT_SOURCES):
            raise MissingWeightsError(
                f"timm model '{self.model_name}' has no pretrained weights to load; {fix}"
            )
        return model

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_head(self.model.forward_features(inputs), pre_logits=True)
        return self.head(features), features

    def config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "model_name": self.model_name,
            "pretrained": self.pretrained,
            "pretrained_file": self.pretrained_file,
            "image_size": self.image_size,
            "in_chans": self.in_chans,
            "drop_rate": self.drop_rate,
            "model_kwargs": self.model_kwargs,
            "data_config": self.data_config,
            "field": self.input_field,
        }

    def rebuild_config(self) -> dict[str, Any]:
        """Same architecture and preprocessing, random init: the saved weights replace it."""
        return dict(self.config(), pretrained=False, pretrained_file=None)


def _fixed_input_size(model_name: str, base_cfg: Any) -> bool:
    import timm

    cfg = base_cfg or timm.models.get_pretrained_cfg(model_name, allow_unregistered=True)
    return bool(getattr(cfg, "fixed_input_size", False)) if cfg is not None else False
