"""The README's "Your own task" blocks, run verbatim on small files made here.

Each block follows a ``<!-- own-task: NAME -->`` marker in README.md: ``bash`` blocks are run
command by command through the CLI's entry point (in this process, for speed), a ``toml`` block
is written to the file its first comment line names.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusion_aft.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- own-task: (?P<name>[\w-]+) -->\s*```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)
WORDS = {
    "pos": ["great", "lovely", "superb", "moving", "witty"],
    "neg": ["awful", "dull", "boring", "flat", "bad"],
}


def blocks() -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text(encoding="utf8"))}


def commands(body: str) -> list[list[str]]:
    """The ``fusion-aft`` command lines of a bash block (continuations joined, comments skipped)."""
    lines = body.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line, comments=True)
        assert argv[0] == "fusion-aft", f"README own-task line is not a fusion-aft command: {line}"
        out.append(argv[1:])
    return out


def run_block(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    lang, body = blocks()[name]
    if lang == "toml":
        first = body.splitlines()[0]
        assert first.startswith("# ") and first.endswith(".toml"), first
        Path(first[2:].strip()).write_text(body, encoding="utf8")
        return
    assert lang == "bash", lang
    for argv in commands(body):
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err[-2000:])


@pytest.fixture
def own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """reviews.csv (id,text,label) and photos/CLASS/*.png in a fresh working folder."""
    rng = np.random.default_rng(0)
    rows = ["id,text,label"]
    for i in range(40):
        label = "pos" if i % 2 else "neg"
        a, b = rng.choice(WORDS[label], 2)
        rows.append(f"r{i:03d},a {a} and {b} film,{label}")
    (tmp_path / "reviews.csv").write_text("\n".join(rows) + "\n")
    for cls, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.integers(-40, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / cls / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSION_AFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FUSION_AFT_REGISTRY", str(tmp_path / "registry"))
    return tmp_path


def test_the_readme_has_the_three_own_task_blocks() -> None:
    found = blocks()
    assert {"csv", "images", "card", "card-commands"} <= set(found)
    assert "--dataset reviews.csv" in found["csv"][1] and "--dataset photos" in found["images"][1]


def test_csv_text_task_block_runs_verbatim(own_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_block("csv", capsys)
    assert (own_files / "runs" / "reviews" / "result.json").is_file()
    assert (own_files / "reviews-student").is_dir()


def test_image_folder_block_runs_verbatim(own_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_block("images", capsys)
    assert (own_files / "runs" / "photos" / "mu_attribution.png").is_file()


def test_new_teacher_card_block_runs_verbatim(own_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fusion_aft import teachers

    try:
        run_block("card", capsys)
        run_block("card-commands", capsys)
        assert (own_files / "registry" / "my-glove-cased.toml").is_file()
        assert (own_files / "runs" / "cased" / "result.json").is_file()
    finally:
        teachers.reload()  # forget the card added to this test's registry
