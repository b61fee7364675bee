"""Hugging Face ``datasets`` sources: GLUE, SuperGLUE, SNLI-VE and a generic ``hf`` source.

Needs the ``datasets`` package (``pip install 'fusion-aft[hub]'``). Data come from the local
Hugging Face cache or the hub; offline and not cached, loading fails with a message saying so.
Sentence pairs become one ``text`` field joined by ``pair_separator`` (default ``" [SEP] "``,
BERT's separator token). GLUE/SuperGLUE test splits have no public labels, so ``test`` is the
``validation`` split (``validation_matched`` for MNLI), as is usual when reporting on them.
Ids are the dataset's ``idx`` column when it has one, else ``<split>-N``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fusion_aft.data.records import Dataset, Split
from fusion_aft.data.registry import register_dataset
from fusion_aft.data.sources._common import subsample
from fusion_aft.data.validate import check_text, guarded_loader
from fusion_aft.errors import UserInputError

INSTALL = "pip install 'fusion-aft[hub]'  (or: pip install datasets)"

# name: (hub path, config, text fields, image field, {our split: hub split})
PRESETS: dict[str, tuple[str, str | None, tuple[str, ...], str | None, dict[str, str]]] = {
    "glue_sst2": ("nyu-mll/glue", "sst2", ("sentence",), None, {}),
    "glue_cola": ("nyu-mll/glue", "cola", ("sentence",), None, {}),
    "glue_mrpc": ("nyu-mll/glue", "mrpc", ("sentence1", "sentence2"), None, {}),
    "glue_qqp": ("nyu-mll/glue", "qqp", ("question1", "question2"), None, {}),
    "glue_mnli": ("nyu-mll/glue", "mnli", ("premise", "hypothesis"), None, {"test": "validation_matched"}),
    "glue_qnli": ("nyu-mll/glue", "qnli", ("question", "sentence"), None, {}),
    "glue_rte": ("nyu-mll/glue", "rte", ("sentence1", "sentence2"), None, {}),
    "glue_wnli": ("nyu-mll/glue", "wnli", ("sentence1", "sentence2"), None, {}),
    "superglue_boolq": ("aps/super_glue", "boolq", ("question", "passage"), None, {}),
    "superglue_cb": ("aps/super_glue", "cb", ("premise", "hypothesis"), None, {}),
    "superglue_rte": ("aps/super_glue", "rte", ("premise", "hypothesis"), None, {}),
    "superglue_wic": ("aps/super_glue", "wic", ("sentence1", "sentence2"), None, {}),
    "snli_ve": ("HuggingFaceM4/SNLI-VE", None, ("hypothesis",), "image", {"test": "test"}),
}


def _datasets_module() -> Any:
    try:
        import datasets
    except ImportError:
        raise UserInputError(f"the 'datasets' package is not installed; install it with: {INSTALL}") from None
    return datasets


def check() -> None:
    _datasets_module()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class _HfFields:
    """``i -> fields`` for rows of one HF split; text is held in memory, images read on demand."""

    def __init__(self, table: Any, rows: list[int], texts: list[str] | None, image_field: str | None):
        self.table = table
        self.rows = rows
        self.texts = texts
        self.image_field = image_field

    def __call__(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.texts is not None:
            out["text"] = self.texts[i]
        if self.image_field is not None:
            out["image"] = self.table[self.rows[i]][self.image_field].convert("RGB")
        return out


class _HfDigest:
    def __init__(self, fingerprint: str, rows: list[int], texts: list[str] | None, labels: list[int]):
        self.prefix = f"hf|{fingerprint}|".encode()
        self.rows = rows
        self.texts = texts
        self.labels = labels

    def __call__(self, i: int) -> bytes:
        text = self.texts[i] if self.texts is not None else ""
        payload = self.prefix + f"{self.rows[i]}|{self.labels[i]}|{text}".encode()
        return hashlib.blake2b(payload, digest_size=16).digest()


def load_hf(
    path: str,
    name: str | None = None,
    text_fields: tuple[str, ...] | list[str] | str = ("text",),
    label_field: str = "label",
    image_field: str | None = None,
    splits: dict[str, str] | None = None,
    revision: str | None = None,
    data_files: Any = None,
    pair_separator: str = " [SEP] ",
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    dataset_name: str = "hf",
) -> Dataset:
    """Load splits of a hub dataset as records (see the module docstring)."""
    import numpy as np

    hf = _datasets_module()
    if isinstance(text_fields, str):
        text_fields = tuple(f.strip() for f in text_fields.split(",") if f.strip())
    mapping = {"train": "train", "test": "validation", **(splits or {})}
    built: dict[str, Split] = {}
    classes: list[str] | None = None
    for ours, theirs in mapping.items():
        try:
            table = hf.load_dataset(path, name, split=theirs, revision=revision, data_files=data_files)
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot load"
            raise UserInputError(
                f"cannot load Hugging Face dataset '{path}'{f' ({name})' if name else ''} split '{theirs}': "
                f"{type(exc).__name__}: {first_line(exc)}; it is not in the local cache and the hub "
                "cannot be reached (or the name is wrong)"
            ) from None
        columns = set(table.column_names)
        for col in (*text_fields, label_field, *([image_field] if image_field else [])):
            if col not in columns:
                raise UserInputError(
                    f"dataset '{path}' split '{theirs}' has no column '{col}'; it has {sorted(columns)}"
                )
        labels_all = [int(v) for v in table[label_field]]
        ids_all = [f"{ours}-{int(v)}" for v in table["idx"]] if "idx" in columns else None
        keep = [i for i, v in enumerate(labels_all) if v >= 0]  # -1 marks unlabelled/unknown rows
        size = {"train": train_size, "test": test_size}.get(ours)
        index = subsample(np.asarray(keep), np.asarray(labels_all), size, seed, f"{dataset_name} {ours}_size")
        rows = [int(i) for i in index]
        ids = [ids_all[i] if ids_all else f"{ours}-{i}" for i in rows]
        texts = None
        if text_fields:
            columns_text = [table[f] for f in text_fields]
            texts = [
                check_text(
                    pair_separator.join(str(col[i]) for col in columns_text), sid, f"dataset '{dataset_name}'"
                )
                for i, sid in zip(rows, ids, strict=True)
            ]
        labels = [labels_all[i] for i in rows]
        built[ours] = Split(
            ours,
            ids,
            labels,
            guarded_loader(_HfFields(table, rows, texts, image_field), ids, dataset_name),
            _HfDigest(getattr(table, "_fingerprint", path), rows, texts, labels),
        )
        if classes is None:
            feature = table.features.get(label_field)
            names = getattr(feature, "names", None)
            classes = list(names) if names else [str(i) for i in range(max(labels_all) + 1)]
    fields = tuple(f for f, on in (("image", image_field), ("text", text_fields)) if on)
    return Dataset(dataset_name, built, classes or [], fields, description=f"{path} {name or ''}".strip())


@register_dataset(
    "hf",
    fields=(),
    summary="Any Hugging Face dataset: path=, name=, text_fields=, label_field=, image_field=",
    check=check,
    needs_options=("path",),
)
def hf(path: str | None = None, **options: Any) -> Dataset:
    """A generic hub dataset; options as :func:`load_hf`."""
    if not path:
        raise UserInputError(
            "dataset 'hf' needs path=HUB_ID "
            "(e.g. --dataset-option path=nyu-mll/glue --dataset-option name=sst2)"
        )
    return load_hf(path, **options)


def _preset(key: str):
    path, config, text_fields, image_field, splits = PRESETS[key]

    def factory(
        train_size: int | None = None,
        test_size: int | None = None,
        seed: int = 0,
        revision: str | None = None,
    ) -> Dataset:
        return load_hf(
            path,
            config,
            text_fields,
            "label",
            image_field,
            splits,
            revision,
            train_size=train_size,
            test_size=test_size,
            seed=seed,
            dataset_name=key,
        )

    factory.__name__ = key
    factory.__doc__ = (
        f"{path} {config or ''} via Hugging Face datasets (train_size, test_size, seed, revision)."
    )
    return factory


for _key, (_path, _config, _texts, _image, _splits) in PRESETS.items():
    register_dataset(
        _key,
        _preset(_key),
        fields=(("image",) if _image else ()) + ("text",),
        summary=f"{_path}{' ' + _config if _config else ''} (Hugging Face datasets; online or cached)",
        check=check,
    )
