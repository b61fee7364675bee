"""β auto: every grid value is scored on a holdout of the training split, the best one is retrained
on all rows, the sweep is recorded, and the test split is not read until the sweep is over."""

from __future__ import annotations

import json

import fusion_aft
from fusion_aft.data.records import Split
from fusion_aft.training import train

READS = {"test": 0}


def _rt_counting_test_reads(**options):
    """Rotten Tomatoes (small), whose test split counts every record it loads."""
    ds = fusion_aft.datasets.load("rotten_tomatoes", train_size=96, test_size=64)
    test = ds.split("test")

    def load(i: int) -> dict:
        READS["test"] += 1
        return test[i].fields

    ds.splits["test"] = Split("test", test.ids, test.labels, load, test.content_digest)
    return ds


def test_beta_auto_picks_by_holdout_and_never_reads_test(tmp_path) -> None:
    fusion_aft.register_dataset(
        "rt_counting_test_reads", _rt_counting_test_reads, fields=("text",), replace=True
    )
    seen: dict[str, int] = {}

    def watch(event: str, info: dict) -> None:
        if event == "step":
            seen.setdefault("first_step", READS["test"])
        if event == "sweep_done":
            seen["sweep_done"] = READS["test"]

    grid = [0.0, 1.0, 10.0]
    result = train(
        dataset="rt_counting_test_reads",
        student="text_bow",
        student_options={"emb_dim": 16, "hidden": 16, "max_length": 32},
        teachers=["glove-6b-50d"],
        method="aft",
        beta="auto",
        beta_grid=grid,
        batch_size=16,
        steps=4,
        log_every=1,
        progress=False,
        out=tmp_path / "run",
        callbacks=[watch],
    )
    assert seen["sweep_done"] == seen["first_step"], "the test split was read while tuning β"
    assert READS["test"] >= seen["sweep_done"] + 64  # read once, for the final evaluation

    run = result.run_dir
    sweep = json.loads((run / "sweep.json").read_text())
    assert [c["beta"] for c in sweep["candidates"]] == grid
    assert sweep["n_fit"] + sweep["n_holdout"] == 96 and sweep["n_holdout"] == 10
    accs = [c["holdout_accuracy"] for c in sweep["candidates"]]
    assert all(0.0 <= a <= 1.0 for a in accs)
    best = max(sweep["candidates"], key=lambda c: (c["holdout_accuracy"], -c["beta"]))
    assert sweep["best_beta"] == best["beta"] == result.beta
    assert result.sweep["best_beta"] == result.beta
    assert (run / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for beta in grid:  # each candidate kept its metrics, its weights were dropped
        folder = run / "sweep" / f"beta-{beta:g}"
        assert (folder / "metrics.jsonl").is_file() and not (folder / "checkpoint").exists()
    summary = json.loads((run / "result.json").read_text())
    assert summary["beta"] == result.beta and summary["beta_auto"] is True
    assert summary["n_labelled"] == 96  # the final run trains on 100% of the labelled rows
    config = json.loads((run / "config.json").read_text())
    assert config["beta"] == "auto" and config["resolved"]["beta_grid"] == grid
