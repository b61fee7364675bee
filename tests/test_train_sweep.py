"""β auto: every grid value is trained on k stratified folds of the labelled rows for half the
steps and scored by holdout cross-entropy; the one-SE choice is retrained on all rows for as many
steps as the candidates (or the given steps with final_steps="given"); the sweep is
recorded with its spread, resumes per (β, fold), and the test split is not read until it is over.
A numeric β is used exactly as given."""

from __future__ import annotations

import json
import math
import statistics

import pytest

import fusion_aft
from fusion_aft.data.records import Split
from fusion_aft.training import train

READS = {"test": 0}
SMALL = {"emb_dim": 16, "hidden": 16, "max_length": 32}


def _rt_counting_test_reads(**options):
    """Rotten Tomatoes (small), whose test split counts every record it loads."""
    ds = fusion_aft.datasets.load("rotten_tomatoes", train_size=96, test_size=64)
    test = ds.split("test")

    def load(i: int) -> dict:
        READS["test"] += 1
        return test[i].fields

    ds.splits["test"] = Split("test", test.ids, test.labels, load, test.content_digest)
    return ds


def _run(tmp_path, callbacks=(), **kw):
    fusion_aft.register_dataset(
        "rt_counting_test_reads", _rt_counting_test_reads, fields=("text",), replace=True
    )
    args = dict(
        dataset="rt_counting_test_reads",
        student="text_bow",
        student_options=SMALL,
        teachers=["glove-6b-50d"],
        method="aft",
        batch_size=16,
        steps=4,
        log_every=1,
        progress=False,
        out=tmp_path / "run",
        callbacks=list(callbacks),
    )
    args.update(kw)
    return train(**args)


def test_beta_auto_cross_validates_by_cross_entropy_and_never_reads_test(tmp_path) -> None:
    seen: dict[str, int] = {}
    labels: list[str] = []

    def watch(event: str, info: dict) -> None:
        if event == "step":
            seen.setdefault("first_step", READS["test"])
            if info["done"] == info["total"]:
                labels.append(f"{info['label']} {info['total']}")
        if event == "sweep_done":
            seen["sweep_done"] = READS["test"]

    grid = [0.0, 1.0, 10.0]
    # the classic one-SE rule here (the largest β within the threshold); keeping β = 0 unless beaten,
    # the accuracy tie-break and the accuracy check have their own tests below
    result = _run(tmp_path, [watch], beta="auto", beta_grid=grid, beta_zero_unless_better=False,
                  beta_accuracy_guard="off", beta_tie_break="largest")
    assert seen["sweep_done"] == seen["first_step"], "the test split was read while tuning β"
    assert READS["test"] >= seen["sweep_done"] + 64  # read once, for the final evaluation
    # 3 β × 3 folds of 2 steps (half of 4), then the final run for as many steps as the candidates
    assert labels == [f"β={b} fold {f}/3 2" for b in ("0", "1", "10") for f in (1, 2, 3)] + [
        f"train β={result.beta:g} 2"
    ]
    assert result.steps == 2 and result.summary["steps"] == 2

    run = result.run_dir
    sweep = json.loads((run / "sweep.json").read_text())
    assert sweep["metric"] == "holdout_cross_entropy" and sweep["rule"] == "one_se"
    assert sweep["folds"] == 3 and sweep["fold_sizes"] == [32, 32, 32] and sweep["n_rows"] == 96
    assert sweep["candidate_steps"] == 2 and sweep["sweep_steps"] == 18
    assert [(r["beta"], r["fold"]) for r in sweep["runs"]] == [(b, f) for b in grid for f in range(3)]
    # mean / sample std / SE per β, from the fold runs, recomputed here with the statistics module
    per_beta = {b: [r["holdout_cross_entropy"] for r in sweep["runs"] if r["beta"] == b] for b in grid}
    for c in sweep["candidates"]:
        xs = per_beta[c["beta"]]
        assert math.isclose(c["mean_cross_entropy"], statistics.fmean(xs), rel_tol=1e-12)
        assert math.isclose(c["std_cross_entropy"], statistics.stdev(xs), rel_tol=1e-9)
        assert math.isclose(c["stderr_cross_entropy"], statistics.stdev(xs) / math.sqrt(3), rel_tol=1e-9)
        assert all(x > 0 for x in xs) and 0.0 <= c["holdout_accuracy"] <= 1.0
    lowest = min(grid, key=lambda b: (statistics.fmean(per_beta[b]), b))
    bound = statistics.fmean(per_beta[lowest]) + statistics.stdev(per_beta[lowest]) / math.sqrt(3)
    assert result.beta == max(b for b in grid if statistics.fmean(per_beta[b]) <= bound)
    assert sweep["best_beta"] == result.beta == result.sweep["best_beta"]
    assert sweep["lowest_at_largest_beta"] == (lowest == max(grid))
    assert (run / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the teachers' probe on the same three folds, paired with the student alone (β = 0)
    probe = sweep["teacher_probe"]
    off = [r["holdout_accuracy"] for r in sweep["runs"] if r["beta"] == 0.0]
    assert len(probe["fold_accuracy"]) == 3 and all(0 <= a <= 1 for a in probe["fold_accuracy"])
    assert all(round(a * 32) == pytest.approx(a * 32) for a in probe["fold_accuracy"])  # rows of 32
    gap = statistics.fmean(probe["fold_accuracy"]) - statistics.fmean(off)
    assert probe["vs_student_alone"] == pytest.approx(gap)
    assert probe["below_student_alone"] == (probe["vs_student_alone"] < 0)
    for beta in grid:  # each candidate kept its metrics, its weights were dropped
        folder = run / "sweep" / "fold-0" / f"beta-{beta:g}"
        assert (folder / "metrics.jsonl").is_file() and not (folder / "checkpoint").exists()
    summary = json.loads((run / "result.json").read_text())
    assert summary["beta"] == result.beta and summary["beta_auto"] is True
    assert summary["n_labelled"] == 96  # the final run trains on 100% of the labelled rows
    assert summary["teacher_probe_accuracy"] == probe["accuracy"]
    assert summary["teacher_probe_vs_student_alone"] == probe["vs_student_alone"]
    config = json.loads((run / "config.json").read_text())
    assert config["beta"] == "auto" and config["resolved"]["beta_grid"] == grid

    # resume: the (β, fold) runs already recorded are kept, the missing ones are trained again
    path = run / "sweep.json"
    kept = dict(sweep, runs=sweep["runs"][:4])
    path.write_text(json.dumps(kept))
    (run / "result.json").unlink()
    labels.clear()
    again = _run(tmp_path, [watch], beta="auto", beta_grid=grid, resume=True, beta_zero_unless_better=False,
                 beta_accuracy_guard="off", beta_tie_break="largest")
    assert [x for x in labels if x.startswith("β=")] == [
        "β=1 fold 2/3 2",
        "β=1 fold 3/3 2",
        "β=10 fold 1/3 2",
        "β=10 fold 2/3 2",
        "β=10 fold 3/3 2",
    ]
    resumed = json.loads(path.read_text())
    assert resumed["runs"][:4] == sweep["runs"][:4]
    assert again.beta == resumed["best_beta"]


def test_the_student_alone_is_kept_unless_a_beta_beats_it_by_one_standard_error(tmp_path) -> None:
    from fusion_aft.training.selection import accuracy_veto, choose_beta

    result = _run(tmp_path, beta="auto", beta_grid=[0.0, 1.0, 10.0])
    sweep = result.sweep
    grid = (0.0, 1.0, 10.0)
    per_beta = {b: [r["holdout_cross_entropy"] for r in sweep["runs"] if r["beta"] == b] for b in grid}
    accuracy = {b: {r["fold"]: r["holdout_accuracy"] for r in sweep["runs"] if r["beta"] == b} for b in grid}
    # within one SE of the lowest loss, the highest mean holdout accuracy (the default tie-break)
    mean_accuracy = {b: statistics.fmean(folds.values()) for b, folds in accuracy.items()}
    expected = choose_beta(per_beta, "one_se", zero_unless_better=True, prefer=mean_accuracy)
    assert sweep["zero_unless_better"] is True and sweep["kept_off"] == expected["kept_off"]
    assert sweep["tie_break"] == "accuracy"
    # then the accuracy check (on by default, 0 SE) of the rule's choice against β = 0, per fold
    veto = accuracy_veto(accuracy, expected["beta"], 0.0)
    assert sweep["accuracy_guard"] == 0.0
    assert sweep["accuracy_vetoed"] == (expected["beta"] if veto["vetoed"] else None)
    assert result.beta == (0.0 if veto["vetoed"] else expected["beta"])
    assert result.summary["beta_accuracy_vetoed"] == sweep["accuracy_vetoed"]
    # "off" trains the student alone for the given steps; a β > 0 for the candidates' steps
    assert result.steps == (4 if result.beta == 0 else 2)


def test_final_steps_given_trains_the_final_run_for_the_given_steps(tmp_path) -> None:
    labels: list[str] = []

    def watch(event: str, info: dict) -> None:
        if event == "step" and info["done"] == info["total"] and info["label"].startswith("train"):
            labels.append(f"{info['label']} {info['total']}")

    result = _run(tmp_path, [watch], beta="auto", beta_grid=[0.0, 1.0], final_steps="given")
    assert labels == [f"train β={result.beta:g} 4"] and result.steps == 4


def test_a_given_beta_is_used_exactly_and_runs_no_sweep(tmp_path) -> None:
    result = _run(tmp_path, beta=10)
    assert result.beta == 10.0 and result.sweep is None
    assert not (result.run_dir / "sweep.json").exists()
    metrics = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {m["beta"] for m in metrics if m.get("phase") == "train"} == {10.0}
    assert json.loads((result.run_dir / "result.json").read_text())["beta"] == 10.0


def test_a_lowest_loss_at_the_grids_largest_beta_is_flagged() -> None:
    from fusion_aft.training.sweep import summarise_runs

    def runs(losses: dict[float, list[float]]) -> list[dict]:
        return [{"beta": b, "fold": f, "holdout_cross_entropy": v, "holdout_accuracy": 0.5,
                 "steps": 2, "wall_time_s": 0.1} for b, vs in losses.items() for f, v in enumerate(vs)]

    falling = summarise_runs(
        runs({3.0: [0.73, 0.72, 0.74], 10.0: [0.65, 0.64, 0.66], 30.0: [0.59, 0.60, 0.58]}), "one_se"
    )
    assert falling["best_beta"] == 30.0 and falling["lowest_at_largest_beta"] is True
    inside = summarise_runs(
        runs({3.0: [0.7, 0.7, 0.7], 10.0: [0.6, 0.61, 0.59], 30.0: [0.9, 0.9, 0.9]}), "one_se"
    )
    assert inside["best_beta"] == 10.0 and inside["lowest_at_largest_beta"] is False
    assert summarise_runs(runs({1.0: [0.5, 0.5]}), "one_se")["lowest_at_largest_beta"] is False


def _fold_runs(losses: dict[float, list[float]]) -> list[dict]:
    return [{"beta": b, "fold": f, "holdout_cross_entropy": v, "holdout_accuracy": 0.5,
             "steps": 2, "wall_time_s": 0.1} for b, vs in losses.items() for f, v in enumerate(vs)]


def test_beta_values_ruled_out_past_the_minimum_are_counted_by_hand() -> None:
    from fusion_aft.training.sweep import ruled_out_past_minimum

    # means 0.30, 0.20 (SE 0.01 → threshold 0.21), 0.205 (within), 0.40 (out), 0.50 (out)
    losses = {0.1: [0.3, 0.3, 0.3], 1.0: [0.19, 0.2, 0.21], 3.0: [0.205, 0.205, 0.205],
              10.0: [0.4, 0.4, 0.4], 30.0: [0.5, 0.5, 0.5]}
    assert ruled_out_past_minimum(_fold_runs(losses), "one_se") == 2  # 0.1 is below the minimum's β
    assert ruled_out_past_minimum(_fold_runs(losses), "min") == 3  # the threshold is the minimum itself
    assert ruled_out_past_minimum([], "one_se") == 0


def test_the_sweep_stops_climbing_after_patience_ruled_out_betas(tmp_path) -> None:
    from fusion_aft.training.sweep import ruled_out_past_minimum

    # given out of order, run in increasing order; β = 0 overfits, huge β flatten the student
    grid = [1e4, 0.0, 1e2, 1e6, 1e8]
    opts = dict(beta="auto", beta_grid=grid, beta_rule="min", steps=60, lr=0.05)
    result = _run(tmp_path, beta_patience=1, **opts)
    sweep = json.loads((result.run_dir / "sweep.json").read_text())
    ran = sorted({r["beta"] for r in sweep["runs"]})
    assert [r["beta"] for r in sweep["runs"]] == [b for b in ran for _ in range(3)]
    assert sweep["skipped"] and ran + sweep["skipped"] == sorted(grid) and sweep["patience"] == 1
    # it stopped as soon as one β past the lowest loss was ruled out, not before
    for k in range(1, len(ran)):
        done = [r for r in sweep["runs"] if r["beta"] in ran[:k]]
        assert ruled_out_past_minimum(done, "min") == 0
    assert ruled_out_past_minimum(sweep["runs"], "min") == 1
    assert result.beta in ran and result.beta == sweep["best_beta"]
    whole = _run(tmp_path, beta_patience=0, out=tmp_path / "whole", **opts)
    assert sorted({r["beta"] for r in whole.sweep["runs"]}) == sorted(grid) and whole.sweep["skipped"] == []
    # the candidates it did run are the whole grid's first ones, loss for loss
    head = whole.sweep["runs"][: len(sweep["runs"])]
    assert [(r["beta"], r["fold"], r["holdout_cross_entropy"]) for r in head] == [
        (r["beta"], r["fold"], r["holdout_cross_entropy"]) for r in sweep["runs"]
    ]


def test_the_accuracy_check_on_recorded_public_task_sweeps() -> None:
    """Replayed on sweeps recorded by benchmarks/defaults_on_public_tasks.py: on seed 2 of the
    debates task holdout cross-entropy takes β = 10 while every fold's holdout accuracy drops
    (by 4.2 ± 0.9 points), so β = 10 is vetoed and the student alone trained, even at two
    standard errors; on subjectivity with unlabelled rows β = 10 gains accuracy and stays."""
    from pathlib import Path

    from fusion_aft.training.sweep import summarise_runs

    results = Path(__file__).resolve().parents[1] / "benchmarks/results/public"
    root = results / "defaults-accuracy/sweeps"
    debates = json.loads((root / "debates-s2.json").read_text())["runs"]
    plain = summarise_runs(debates, "one_se", zero_unless_better=True)
    assert plain["best_beta"] == 10.0 and plain["accuracy_vetoed"] is None
    guarded = summarise_runs(debates, "one_se", zero_unless_better=True, accuracy_guard=2.0)
    assert guarded["best_beta"] == 0.0 and guarded["accuracy_vetoed"] == 10.0
    check = guarded["accuracy_check"]
    assert check["applied"] and check["n"] == 3
    assert math.isclose(check["mean"], -0.0417, abs_tol=5e-4)
    assert math.isclose(check["stderr"], 0.0093, abs_tol=5e-4)
    assert guarded["best_holdout_accuracy"] == plain["candidates"][0]["holdout_accuracy"]  # β = 0's
    by_beta = {c["beta"]: c for c in guarded["candidates"]}
    assert "accuracy_vs_off" not in by_beta[0.0]
    assert math.isclose(by_beta[10.0]["accuracy_vs_off"], check["mean"], rel_tol=1e-12)
    subj = json.loads((root / "subj800u-s0.json").read_text())["runs"]
    kept = summarise_runs(subj, "one_se", zero_unless_better=True, accuracy_guard=0.0)
    assert kept["best_beta"] == 10.0 and kept["accuracy_vetoed"] is None
    assert kept["accuracy_check"]["mean"] > 0
    # seed 1 of the debates task: β = 10 at -1.3 ± 0.9 points, vetoed by any drop (the default)
    # but not at two standard errors
    seed1 = json.loads((root / "debates-s1.json").read_text())["runs"]
    assert summarise_runs(seed1, "one_se", zero_unless_better=True, accuracy_guard=0.0)["best_beta"] == 0.0
    assert summarise_runs(seed1, "one_se", zero_unless_better=True, accuracy_guard=2.0)["best_beta"] == 10.0


def test_the_accuracy_tie_break_on_a_recorded_public_task_sweep() -> None:
    """Seed 0 of the word-polarity task: β = 3, 10, 30 and 100 are within one SE of the lowest
    holdout loss (β = 10); the classic rule takes the largest (100, whose holdout accuracy is below
    the student alone's, so the check sets it aside), the tie-break the most accurate (10)."""
    from pathlib import Path

    from fusion_aft.training.sweep import summarise_runs

    sweeps = Path(__file__).resolve().parents[1] / "benchmarks/results/public/defaults-accuracy/sweeps"
    runs = json.loads((sweeps / "gi800-s0.json").read_text())["runs"]
    largest = summarise_runs(runs, "one_se", zero_unless_better=True, tie_break="largest")
    assert largest["min_mean_beta"] == 10.0 and largest["best_beta"] == 100.0
    within = [c for c in largest["candidates"] if c["mean_score"] <= largest["threshold"]]
    assert [c["beta"] for c in within] == [3.0, 10.0, 30.0, 100.0]
    most_accurate = max(within, key=lambda c: c["holdout_accuracy"])["beta"]
    accurate = summarise_runs(runs, "one_se", zero_unless_better=True, tie_break="accuracy")
    assert accurate["best_beta"] == most_accurate == 10.0
    vetoed = summarise_runs(runs, "one_se", zero_unless_better=True, accuracy_guard=0.0, tie_break="largest")
    assert vetoed["best_beta"] == 0.0 and vetoed["accuracy_vetoed"] == 100.0
    both = summarise_runs(runs, "one_se", zero_unless_better=True, accuracy_guard=0.0, tie_break="accuracy")
    assert both["best_beta"] == 10.0 and both["accuracy_vetoed"] is None
    with pytest.raises(ValueError, match="unknown β tie-break"):
        summarise_runs(runs, "one_se", tie_break="smallest")  # type: ignore[arg-type]
