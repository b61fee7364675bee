"""Extraction by two processes (torchrun, gloo) gives the single-process bank byte for byte, on a
shared filesystem, in shard + merge mode, and with node-local cache folders; a killed job resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fusion_aft

pytestmark = pytest.mark.xdist_group("torchrun")

ROWS = {"train_size": 300}
TEACHER = "glove-6b-50d"

DRIVER = r"""
import os, sys
import fusion_aft
root, teacher, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
rank = os.environ["RANK"]
opts = {"train_size": rows}
kw = dict(batch_size=16, chunk_rows=32, progress=False, dataset_options=opts)
# one filesystem, forced shard + merge: ranks write parts, rank 0 merges them over the group
fusion_aft.extract(teacher, "rotten_tomatoes", "train", cache_dir=f"{root}/merge", shared_fs=False, **kw)
# a cache folder per rank, as on nodes with local disks: detected, each gets the whole bank
fusion_aft.extract(teacher, "rotten_tomatoes", "train", cache_dir=f"{root}/node{rank}", **kw)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def _torchrun_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]


def torchrun(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(_torchrun_cmd(*args), cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _cli_args(cache: Path, teacher: str, rows: int, *extra: str) -> list[str]:
    return ["-m", "fusion_aft.cli", "extract", "-d", "rotten_tomatoes", "-t", teacher, "--dataset-option",
            f"train_size={rows}", "--cache-dir", str(cache), "--batch-size", "16", "--chunk-rows", "32",
            "--no-progress", *extra]


def _single(cache: Path, teacher: str = TEACHER, rows: int = 300) -> Path:
    bank = fusion_aft.extract(teacher, "rotten_tomatoes", "train", cache_dir=cache, batch_size=16,
                              chunk_rows=32, progress=False, dataset_options={"train_size": rows})
    return Path(bank.banks[0].folder)


def _folder(cache: Path) -> Path:
    (manifest,) = cache.glob("*/*/manifest.json")
    return manifest.parent


def assert_same_bank(got: Path, want: Path) -> None:
    """Data, ids and digests byte for byte; manifests equal except their times (stamps, seconds)."""
    for name in ("features.npy", "ids.npy", "digests.npy"):
        assert (got / name).read_bytes() == (want / name).read_bytes(), name
    a, b = (json.loads((f / "manifest.json").read_text()) for f in (got, want))
    for m in (a, b):
        m.pop("created")
        m.pop("updated")
        m.pop("extract_seconds")
    assert a == b
    assert a["complete"] and len(a["chunks"]) == 10  # 300 rows in chunks of 32
    assert not (got / ".parts").exists()
    assert fusion_aft.bank.verify_bank(got).ok


@pytest.fixture(scope="session")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _single(tmp_path_factory.mktemp("single"))


def test_cli_extract_on_two_processes_writes_the_single_process_bank(tmp_path: Path, single: Path) -> None:
    proc = torchrun(*_cli_args(tmp_path / "shared", TEACHER, 300, "--json"), cwd=tmp_path)
    report = json.loads(proc.stdout)  # rank 0 alone prints
    assert report["banks"][0]["rows"] == 300
    assert_same_bank(_folder(tmp_path / "shared"), single)


def test_shard_and_merge_and_node_local_caches_give_the_single_process_bank(
    tmp_path: Path, single: Path
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER, encoding="utf8")
    torchrun(str(script), str(tmp_path), TEACHER, "300", cwd=tmp_path)
    assert_same_bank(_folder(tmp_path / "merge"), single)
    for rank in (0, 1):  # every "node" holds the complete bank
        assert_same_bank(_folder(tmp_path / f"node{rank}"), single)


@pytest.mark.slow
def test_shared_fs_is_refused_when_the_ranks_see_different_folders(tmp_path: Path) -> None:
    script = tmp_path / "refuse.py"
    script.write_text(
        "import os, fusion_aft\n"
        "cache = f'{os.getcwd()}/n{os.environ[\"RANK\"]}'\n"
        "fusion_aft.extract('glove-6b-50d', 'rotten_tomatoes', cache_dir=cache, shared_fs=True,"
        " progress=False, dataset_options={'train_size': 64})\n",
        encoding="utf8",
    )
    proc = subprocess.run(_torchrun_cmd(str(script)), cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "--shared-fs was given but the cache folder" in proc.stderr


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL the launcher and its workers at once, as a crash of the node would."""
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--shared-fs", "--no-shared-fs"])
def test_killed_job_resumes_from_finished_chunks(tmp_path: Path, mode: str) -> None:
    """SIGKILL the whole job once some chunks are done; the rerun extracts only the rest and the
    bank equals the single-process one."""
    teacher, rows = "all-minilm-l6-v2", 320
    cache = tmp_path / "dist"
    args = _cli_args(cache, teacher, rows, mode)
    job = subprocess.Popen(_torchrun_cmd(*args), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if len(list(cache.glob("*/*/.parts/*.json"))) >= 3:
                break
            assert job.poll() is None, "the job ended before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("no chunk finished in time")
    finally:
        _kill_tree(job.pid)
        job.wait()
    done_before = len(list(cache.glob("*/*/.parts/*.json")))
    proc = torchrun(*args[:2], "--verbose", *args[2:], cwd=tmp_path)
    line = next((x for x in proc.stderr.splitlines() if "chunks to extract" in x), None)
    assert line is not None, proc.stderr[-4000:]
    todo = int(line.split(": ")[-1].split(" of ")[0])
    assert todo <= 10 - done_before  # 320 rows = 10 chunks; finished ones are not redone
    single = _single(tmp_path / "single", teacher, rows)
    got = _folder(cache)
    for name in ("features.npy", "ids.npy", "digests.npy"):
        assert (got / name).read_bytes() == (single / name).read_bytes(), name
