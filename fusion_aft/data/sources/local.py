"""A user's own data: an image folder (one sub-folder per class), a CSV file or a JSON-lines file.

Common options:

* ``test_path``: a second folder/file holding the test split; without it, ``test_fraction`` of
  the rows (stratified by label, seeded by ``seed``) become the test split.
* ``classes``: the class names in label order; by default the sorted folder names (images) or
  the sorted distinct label values (tables; integer labels 0..K-1 are used as given).

Tables (``csv``/``jsonl``) take ``text_column`` (default ``text``), ``label_column`` (default
``label``), ``id_column`` (default ``id`` when the table has that column; ``id_column=`` empty,
or no ``id`` column, gives ids ``row-N``, N the data row, 0-based) and
``image_column`` (a path relative to the file, for image or image–text rows). Rows of a
``test_path`` file get default ids ``test-row-N``. Bad rows (empty
text, missing label, duplicate id, unreadable image) are reported with their id.

Unlabelled rows: a table row whose label is empty, and every image under an ``unlabelled/``
sub-folder of an image folder, form the dataset's ``unlabelled`` split. They are never a class
and never test rows; training gives them to the regulariser (cross-entropy never sees them). A
``test_path`` file or folder must be fully labelled.
"""

from __future__ import annotations

import csv as csv_module
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft.data.records import UNLABELLED, Dataset, Split
from fusion_aft.data.registry import register_dataset
from fusion_aft.data.select import stratified_partition
from fusion_aft.data.validate import FieldLoadError, check_text, guarded_loader
from fusion_aft.errors import UserInputError

#: the column used for sample ids when a table has it and ``id_column`` is not given
ID_COLUMN = "id"

#: the image sub-folder whose images are unlabelled rows, not a class
UNLABELLED_FOLDER = "unlabelled"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _path(value: Any, what: str, kind: str) -> Path:
    if value is None:
        raise UserInputError(
            f"dataset '{kind}' needs {what}=PATH (e.g. --dataset-option {what}=./data, or --dataset ./data)"
        )
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise UserInputError(f"dataset '{kind}': {what} {path} does not exist")
    return path


class _ImageFile:
    """``i -> {"image": RGB PIL image}`` for a list of files (picklable)."""

    def __init__(self, files: list[Path], extra: list[dict[str, Any]] | None = None) -> None:
        self.files = files
        self.extra = extra

    def __call__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            image = im.convert("RGB")
        fields: dict[str, Any] = {"image": image}
        if self.extra is not None:
            fields.update(self.extra[i])
        return fields


class _FileDigest:
    """A record's digest from its image file bytes (and any text), without decoding the image."""

    def __init__(self, files: list[Path | None], texts: list[str | None], labels: list[int], ids: list[str]):
        self.files = files
        self.texts = texts
        self.labels = labels
        self.ids = ids

    def __call__(self, i: int) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        if self.files[i] is not None:
            try:
                h.update(b"file" + Path(self.files[i]).read_bytes())
            except OSError as exc:
                raise FieldLoadError(f"cannot read record '{self.ids[i]}': {exc}") from exc
        if self.texts[i] is not None:
            h.update(b"text" + self.texts[i].encode("utf-8"))
        h.update(b"label" + int(self.labels[i]).to_bytes(8, "little", signed=True))
        return h.digest()


class _Texts:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __call__(self, i: int) -> dict[str, Any]:
        return {"text": self.texts[i]}


# -- image folders ---------------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]


def _scan_folder(root: Path, classes: list[str] | None, kind: str) -> tuple[list[Path], list[int], list[str]]:
    found = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != UNLABELLED_FOLDER
    )
    if not found:
        raise UserInputError(
            f"dataset '{kind}': {root} has no class sub-folders (expected {root}/CLASS/IMAGE)"
        )
    names = list(classes) if classes is not None else found
    unknown = [c for c in found if c not in names]
    if unknown:
        raise UserInputError(
            f"dataset '{kind}': folders {unknown} in {root} are not among the classes {names}"
        )
    files, labels = [], []
    for name in found:
        for f in sorted((root / name).rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(f)
                labels.append(names.index(name))
    return files, labels, names


def _image_split(name: str, root: Path, files: list[Path], labels: list[int], index: Any, kind: str) -> Split:
    chosen = [files[i] for i in index]
    own = [labels[i] for i in index]
    ids = [f.relative_to(root).as_posix() for f in chosen]
    where = f"dataset '{kind}' ({root})"
    return Split(
        name,
        ids,
        own,
        guarded_loader(_ImageFile(chosen), ids, where),
        _FileDigest(list(chosen), [None] * len(chosen), own, ids),
    )


@register_dataset(
    "image_folder",
    fields=("image",),
    summary="Your images: PATH/CLASS/*.png (one folder per class)",
    needs_options=("path",),
)
def image_folder(
    path: str | Path | None = None,
    test_path: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: list[str] | None = None,
) -> Dataset:
    """Images in one sub-folder per class; ids are paths relative to the root (``cat/001.png``)."""
    root = _path(path, "path", "image_folder")
    files, labels, names = _scan_folder(root, classes, "image_folder")
    splits: dict[str, Split] = {}
    unl_files = _images_in(root / UNLABELLED_FOLDER) if (root / UNLABELLED_FOLDER).is_dir() else []
    if unl_files:
        unl = [UNLABELLED] * len(unl_files)
        splits["unlabelled"] = _image_split(
            "unlabelled", root, unl_files, unl, range(len(unl)), "image_folder"
        )
    if test_path is not None:
        test_root = _path(test_path, "test_path", "image_folder")
        if (test_root / UNLABELLED_FOLDER).is_dir():
            raise UserInputError(
                f"dataset 'image_folder': the test folder {test_root} has an {UNLABELLED_FOLDER}/ folder; "
                "test images must be labelled (move them to the training folder's unlabelled/)"
            )
        t_files, t_labels, _ = _scan_folder(test_root, names, "image_folder")
        train = _image_split("train", root, files, labels, range(len(files)), "image_folder")
        test = _image_split("test", test_root, t_files, t_labels, range(len(t_files)), "image_folder")
    else:
        tr, te = _partition(labels, test_fraction, seed, "image_folder")
        train = _image_split("train", root, files, labels, tr, "image_folder")
        test = _image_split("test", root, files, labels, te, "image_folder")
    return Dataset(
        "image_folder", {"train": train, "test": test, **splits}, names, ("image",), meta={"path": str(root)}
    )


def _partition(
    labels: list[int], test_fraction: float, seed: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < float(test_fraction) < 1.0:
        raise UserInputError(f"dataset '{kind}': test_fraction must be between 0 and 1, got {test_fraction}")
    n_test = int(round(float(test_fraction) * len(labels)))
    if len(labels) < 2 or not 0 < n_test < len(labels):
        raise UserInputError(
            f"dataset '{kind}': {len(labels)} rows cannot be split with test_fraction={test_fraction}; "
            "add rows or pass test_path"
        )
    return stratified_partition(labels, n_test, seed)


# -- tables ----------------------------------------------------------------------------------------
def _read_table(path: Path, kind: str) -> list[dict[str, Any]]:
    try:
        if kind == "csv":
            with open(path, newline="", encoding="utf-8") as f:
                return list(csv_module.DictReader(f))
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise UserInputError(
                            f"dataset 'jsonl': {path} line {n} is not JSON ({exc.msg})"
                        ) from None
        return rows
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"dataset '{kind}': cannot read {path}: {exc}") from None


class _Table:
    """Parsed rows of one table file: ids, texts, image paths, raw labels."""

    def __init__(self, path: Path, kind: str, text_column: str | None, label_column: str,
                 id_column: str | None, image_column: str | None, prefix: str = "",
                 allow_unlabelled: bool = False) -> None:  # fmt: skip
        rows = _read_table(path, kind)
        if not rows:
            raise UserInputError(f"dataset '{kind}': {path} has no rows")
        columns = list(rows[0])
        id_column = _id_column(id_column, columns)
        for option, col in (
            ("text_column", text_column),
            ("label_column", label_column),
            ("id_column", id_column),
            ("image_column", image_column),
        ):
            if col is not None and col not in columns:
                raise UserInputError(
                    f"dataset '{kind}': column '{col}' is not in {path}; its columns are "
                    f"{', '.join(columns)}; choose one with --dataset-option {option}=NAME"
                )
        self.ids = [
            str(r[id_column]).strip() if id_column else f"{prefix}row-{n}" for n, r in enumerate(rows)
        ]
        seen: set[str] = set()
        for sample_id in self.ids:
            if sample_id in seen:
                raise UserInputError(
                    f"dataset '{kind}': duplicate id '{sample_id}' in {path}; ids must be unique"
                )
            seen.add(sample_id)
        self.raw_labels = [r.get(label_column) for r in rows]
        #: rows with an empty label: unlabelled rows of the training file
        self.unlabelled = [
            n for n, raw in enumerate(self.raw_labels) if raw is None or str(raw).strip() == ""
        ]
        if self.unlabelled and not allow_unlabelled:
            sample_id = self.ids[self.unlabelled[0]]
            raise UserInputError(
                f"dataset '{kind}': record '{sample_id}' in {path} has no label; test rows must be labelled "
                "(rows with an empty label are unlabelled rows only in the training file)"
            )
        if len(self.unlabelled) == len(rows):
            raise UserInputError(f"dataset '{kind}': no row of {path} has a label in column '{label_column}'")
        self.texts = None
        if text_column is not None:
            self.texts = [
                check_text(r.get(text_column), i, f"dataset '{kind}' ({path})")
                for i, r in zip(self.ids, rows, strict=True)
            ]
        self.images = None
        if image_column is not None:
            self.images = [(path.parent / str(r[image_column])).resolve() for r in rows]


def _id_column(id_column: str | None, columns: list[str]) -> str | None:
    """The id column: ``id`` when the table has one and none was chosen; ``""`` = row numbers."""
    if id_column is None:
        return ID_COLUMN if ID_COLUMN in columns else None
    return id_column or None


def _label_map(raws: list[Any], classes: list[str] | None) -> tuple[list[str], dict[str, int]]:
    """Class names and raw value → label; integer values are used as labels as they are."""
    values = [str(v).strip() for v in raws]
    numeric = all(v.lstrip("-").isdigit() for v in values)
    if classes is not None:
        names = [str(c) for c in classes]
        if numeric and not set(values) & set(names):
            return names, {v: int(v) for v in values}
        return names, {c: i for i, c in enumerate(names)}
    if numeric:
        return [str(i) for i in range(max(int(v) for v in values) + 1)], {v: int(v) for v in values}
    names = sorted(set(values))
    return names, {c: i for i, c in enumerate(names)}


def _labels(table: _Table, mapping: dict[str, int], kind: str, path: Path) -> list[int]:
    out = []
    unlabelled = set(table.unlabelled)
    for n, (sample_id, raw) in enumerate(zip(table.ids, table.raw_labels, strict=True)):
        if n in unlabelled:
            out.append(UNLABELLED)
            continue
        value = str(raw).strip()
        if value not in mapping:
            raise UserInputError(
                f"dataset '{kind}': record '{sample_id}' in {path} has label '{value}', not a class"
            )
        out.append(mapping[value])
    return out


def _table_split(name: str, table: _Table, labels: list[int], index: Any, kind: str, path: Path) -> Split:
    idx = list(index)
    ids = [table.ids[i] for i in idx]
    own = [labels[i] for i in idx]
    texts = [table.texts[i] for i in idx] if table.texts is not None else None
    images = [table.images[i] for i in idx] if table.images is not None else None
    where = f"dataset '{kind}' ({path})"
    if images is not None:
        extra = [{"text": t} for t in texts] if texts is not None else None
        load = guarded_loader(_ImageFile(images, extra), ids, where)
    else:
        load = _Texts(texts or [])
    digest = _FileDigest(
        list(images) if images is not None else [None] * len(idx),
        list(texts) if texts is not None else [None] * len(idx),
        own,
        ids,
    )
    return Split(name, ids, own, load, digest)


def _table_dataset(
    kind: str,
    path: Any,
    text_column: str | None,
    label_column: str,
    id_column: str | None,
    image_column: str | None,
    test_path: Any,
    test_fraction: float,
    seed: int,
    classes: list[str] | None,
) -> Dataset:
    if text_column is None and image_column is None:
        raise UserInputError(f"dataset '{kind}': give text_column and/or image_column")
    main = _path(path, "path", kind)
    table = _Table(main, kind, text_column, label_column, id_column, image_column, allow_unlabelled=True)
    test_table = None
    unlabelled = set(table.unlabelled)
    labelled_rows = np.asarray([n for n in range(len(table.ids)) if n not in unlabelled], dtype=np.int64)
    raws = [table.raw_labels[n] for n in labelled_rows]
    if test_path is not None:
        test_file = _path(test_path, "test_path", kind)
        test_table = _Table(test_file, kind, text_column, label_column, id_column, image_column, "test-")
        raws += test_table.raw_labels
    names, mapping = _label_map(raws, classes)
    labels = _labels(table, mapping, kind, main)
    if test_table is not None:
        train = _table_split("train", table, labels, labelled_rows, kind, main)
        test_labels = _labels(test_table, mapping, kind, test_file)
        test = _table_split("test", test_table, test_labels, range(len(test_labels)), kind, test_file)
    else:
        tr, te = _partition([labels[n] for n in labelled_rows], test_fraction, seed, kind)
        tr, te = labelled_rows[tr], labelled_rows[te]
        train = _table_split("train", table, labels, tr, kind, main)
        test = _table_split("test", table, labels, te, kind, main)
    splits = {"train": train, "test": test}
    if table.unlabelled:
        splits["unlabelled"] = _table_split("unlabelled", table, labels, table.unlabelled, kind, main)
    fields = tuple(f for f, col in (("image", image_column), ("text", text_column)) if col is not None)
    return Dataset(kind, splits, names, fields, meta={"path": str(main)})


@register_dataset(
    "csv",
    fields=("text",),
    summary="Your CSV file: text (and/or image path) column + label column",
    needs_options=("path",),
)
def csv(
    path: str | Path | None = None,
    text_column: str | None = "text",
    label_column: str = "label",
    id_column: str | None = None,
    image_column: str | None = None,
    test_path: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: list[str] | None = None,
) -> Dataset:
    """Rows of a CSV file (UTF-8, header row); see the module docstring for the options."""
    return _table_dataset(
        "csv",
        path,
        text_column,
        label_column,
        id_column,
        image_column,
        test_path,
        test_fraction,
        seed,
        classes,
    )


@register_dataset(
    "jsonl",
    fields=("text",),
    summary="Your JSON-lines file: one object per line with text (and/or image) and label",
    needs_options=("path",),
)
def jsonl(
    path: str | Path | None = None,
    text_column: str | None = "text",
    label_column: str = "label",
    id_column: str | None = None,
    image_column: str | None = None,
    test_path: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: list[str] | None = None,
) -> Dataset:
    """Rows of a JSON-lines file; see the module docstring for the options."""
    return _table_dataset(
        "jsonl",
        path,
        text_column,
        label_column,
        id_column,
        image_column,
        test_path,
        test_fraction,
        seed,
        classes,
    )
