"""DDP training under torchrun (CPU, gloo): both ranks end with identical weights, rank 0 alone
writes the run folder, and with --global-kernel the run follows the single-process run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.xdist_group("torchrun")

OPTIONS = dict(
    dataset="rotten_tomatoes",
    dataset_options={"train_size": 300, "test_size": 100},
    student="text_bow",
    teachers=["glove-6b-50d"],
    method="aft",
    beta=1.0,
    n_labels=64,
    steps=6,
    batch_size=16,
    checkpoint_every=3,
    device="cpu",
    progress=False,
    extract_batch_size=16,
)

# Each rank trains, then dumps a digest of its student's tensors and the tensors themselves.
DRIVER = r"""
import hashlib, json, os, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
import fusion_aft
root, options, kernels = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3].split(",")
rank = os.environ.get("RANK", "single")
for kernel in kernels:
    result = fusion_aft.train(out=str(root / f"run-{kernel}-{rank}"), cache_dir=str(root / "cache"),
                              global_kernel=kernel == "global", **options)
    tensors = load_file(Path(result.run_dir) / "student" / "student.safetensors")
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].numpy().tobytes())
    save_file(tensors, str(root / f"{kernel}-{rank}.safetensors"))
    (root / f"{kernel}-{rank}.json").write_text(json.dumps(
        {"digest": digest.hexdigest(), "accuracy": result.test_accuracy, "run_dir": str(result.run_dir)}))
"""


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # computed once for the whole test run, also when pytest-xdist spreads the tests over workers
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "ddp_train"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            script = root / "driver.py"
            script.write_text(DRIVER, encoding="utf8")
            options = json.dumps(OPTIONS)
            _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                  str(script), str(root), options, "local,global"], root)
            _run([sys.executable, str(script), str(root), options, "global"], root)
            (root / "done").touch()
    return root


def _report(root: Path, name: str) -> dict:
    return json.loads((root / f"{name}.json").read_text())


def test_ddp_training_ends_with_identical_weights_on_both_ranks(runs: Path) -> None:
    for kernel in ("local", "global"):
        r0, r1 = _report(runs, f"{kernel}-0"), _report(runs, f"{kernel}-1")
        assert r0["digest"] == r1["digest"]
        assert r0["accuracy"] == r1["accuracy"]
    # the two kernels are different objectives: the weights differ
    assert _report(runs, "local-0")["digest"] != _report(runs, "global-0")["digest"]


def test_rank_zero_alone_writes_the_run_folder(runs: Path) -> None:
    run = runs / "run-local-0"
    assert _report(runs, "local-0")["run_dir"] == str(run)
    assert not Path(_report(runs, "local-1")["run_dir"]).exists()  # rank 1's scratch is gone
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["phase"] == "train"]
    assert steps == sorted(set(steps))  # one writer: no step logged twice
    assert [p.name for p in (run / "checkpoint").glob("step-*")] == ["step-00000006"]
    assert json.loads((run / "result.json").read_text())["steps"] == 6


def test_global_kernel_training_follows_the_single_process_run(runs: Path) -> None:
    """Same global batches, same loss, averaged gradients: the weights after 6 Adam steps agree
    with the single-process run up to float32 rounding."""
    dist = load_file(runs / "global-0.safetensors")
    single = load_file(runs / "global-single.safetensors")
    local = load_file(runs / "local-0.safetensors")
    for name, value in single.items():
        torch.testing.assert_close(dist[name], value, atol=1e-5, rtol=1e-4)
    assert max(float((local[n] - single[n]).abs().max()) for n in single) > 1e-4
