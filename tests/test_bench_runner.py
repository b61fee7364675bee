"""The runner end to end on a micro suite: results, report, resume-by-skip, the probe on a real bank."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fusion_aft.bench.runner import run_suite
from fusion_aft.bench.suite import parse_suite

pytestmark = pytest.mark.xdist_group("bench_runner")

MICRO = {
    "name": "micro",
    "defaults": {
        "methods": ["none", "aft", "probe"],
        "seeds": [0, 1],
        "steps": 3,
        "batch_size": 16,
        "holdout": 0.25,
        "beta": {"aft": [1.0, 10.0]},
    },
    "tasks": [
        {
            "name": "rt",
            "dataset": "rotten_tomatoes",
            "dataset_options": {"train_size": 160, "test_size": 80},
            "labels": 60,
            "unlabelled": 40,
            "student": "text_bow",
            "teachers": ["glove-6b-50d", "paraphrase-minilm-l3-v2"],
        }
    ],
}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    results = run_suite(parse_suite(MICRO), out, progress=False)
    return out, results


def test_first_run_writes_every_cell_and_the_report(first_run):
    out, results = first_run
    # 6 tuning cells (aft × 2 β × 3 folds) + STL 2 seeds + AFT 3 subsets × 2 seeds + probe 3 subsets
    assert results["cells_run"] == 6 + 2 + 6 + 3 and results["cells_reused"] == 0
    assert len(list((out / "cells").glob("*.json"))) == 17
    for name in ("results.json", "results.csv", "report.md", "normalised_error.png", "ablation.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    tuned = saved["tuning"]["rt"]["aft"]
    assert tuned["rule"] == "one_se" and tuned["tie_break"] == "accuracy"
    assert set(tuned["cross_entropy"]) == {"1", "10"}
    # the one-SE threshold from the tuning cells' own cross-entropies; within it, the most accurate
    tune = [c for c in saved["cells"] if c["kind"] == "tune"]
    ce = {b: [c["cross_entropy"] for c in tune if c["beta"] == b] for b in (1.0, 10.0)}
    acc = {b: sum(c["accuracy"] for c in tune if c["beta"] == b) / 3 for b in (1.0, 10.0)}
    assert all(len(v) == 3 for v in ce.values())
    mean = {b: sum(v) / 3 for b, v in ce.items()}
    low = min(mean, key=lambda b: (mean[b], b))
    se = (sum((x - mean[low]) ** 2 for x in ce[low]) / 2) ** 0.5 / 3**0.5
    within = [b for b in mean if mean[b] <= mean[low] + se]
    assert tuned["largest_within"] == max(within)
    assert tuned["chosen"] == max(within, key=lambda b: (acc[b], b))
    assert tuned["cross_entropy"][f"{low:g}"]["stderr"] == pytest.approx(se)
    # a lowest loss at the grid's largest β is flagged (a larger β may do better), in the report too
    assert tuned["lowest_at_largest_beta"] == (low == 10.0)
    runs = [c for c in saved["cells"] if c["kind"] == "run"]
    aft = [c for c in runs if c["method"] == "aft"]
    assert {c["beta"] for c in aft} == {saved["tuning"]["rt"]["aft"]["chosen"]}
    full = [c for c in aft if len(c["teachers"]) == 2]
    assert all(abs(sum(c["mu_share"].values()) - 1.0) < 1e-5 for c in full)
    assert all(
        c["n_labelled"] == 60 and c["n_unlabelled"] == 40 and c["n_scored"] == 80
        for c in runs
        if c["method"] != "probe"
    )
    # 3 folds of the 60 labelled rows; half of the test cells' 3 steps, rounded up
    assert all(c["scored_on"] == "holdout" and c["n_scored"] == 20 and c["n_labelled"] == 40 for c in tune)
    assert all(c["steps"] == 2 for c in tune) and {c["fold"] for c in tune} == {0, 1, 2}
    report = (out / "report.md").read_text()
    assert "## Summary" in report and "| AFT |" in report and "Teacher ablation" in report
    assert ("at the grid's largest β" in report) == (low == 10.0)
    csv_rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 17


def test_rerun_skips_finished_cells_and_reruns_only_missing_ones(first_run):
    out, first = first_run
    shutil.rmtree(out / "runs")  # training writes run folders; a skipped cell must not
    again = run_suite(parse_suite(MICRO), out, progress=False)
    assert again["cells_run"] == 0 and again["cells_reused"] == 17
    assert not (out / "runs").exists()
    acc = {c["key"]: c["accuracy"] for c in first["cells"]}
    assert {c["key"]: c["accuracy"] for c in again["cells"]} == acc

    victim = next((out / "cells").glob("run-rt-aft-glove-6b-50d-s1.json"))
    victim.unlink()
    third = run_suite(parse_suite(MICRO), out, progress=False)
    assert third["cells_run"] == 1 and third["cells_reused"] == 16
    assert victim.is_file() and (out / "runs" / victim.stem).is_dir()
    # training is deterministic on CPU: the rerun cell reproduces its accuracy
    assert {c["key"]: c["accuracy"] for c in third["cells"]} == acc
    assert third["picked_tasks"] is None
    assert "`fusion-aft bench micro --out DIR`" in (out / "report.md").read_text()
    # a run of the tasks picked with --task says so in its results and in the report's command
    picked = run_suite(parse_suite(MICRO).only(["rt"]), out, progress=False)
    assert picked["cells_run"] == 0 and picked["picked_tasks"] == ["rt"]
    assert "`fusion-aft bench micro --task rt --out DIR`" in (out / "report.md").read_text()


def test_changed_settings_invalidate_cells(first_run, tmp_path):
    out, _ = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out / "cells", copy / "cells")
    changed = json.loads(json.dumps(MICRO))
    changed["defaults"]["steps"] = 4
    changed["defaults"]["methods"] = ["none", "probe"]
    res = run_suite(parse_suite(changed), copy, progress=False)
    # STL cells trained again (steps changed); the probe does not depend on steps but is keyed by
    # every task setting, so it reruns too (it is cheap)
    assert res["cells_run"] == 2 + 3 and res["cells_reused"] == 0


def test_linear_probe_on_a_real_bank_matches_sklearn_and_slices_by_teacher(first_run):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import fusion_aft
    from fusion_aft.bank.probe import linear_probe, probe_features

    ds = fusion_aft.datasets.load("rotten_tomatoes", train_size=160, test_size=80)
    train, test = ds.split("train"), ds.split("test")
    joint = fusion_aft.extract(["glove-6b-50d", "paraphrase-minilm-l3-v2"], ds, "train", progress=False)
    glove = fusion_aft.extract(["glove-6b-50d"], ds, "train", progress=False)
    ids = train.ids[:50]
    assert np.array_equal(probe_features(joint, ids, ["glove-6b-50d"]), glove.rows(ids))
    assert probe_features(joint, ids).shape == (50, 50 + 384)

    jt = fusion_aft.extract(["glove-6b-50d", "paraphrase-minilm-l3-v2"], ds, "test", progress=False)
    xtr, xte = probe_features(joint, train.ids), probe_features(jt, test.ids)
    got = linear_probe(xtr, train.labels, xte, test.labels, c=0.5)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)).fit(xtr, train.labels)
    assert got["accuracy"] == pytest.approx(float((ref.predict(xte) == np.array(test.labels)).mean()))
    assert got["accuracy"] > 0.5  # real sentence features carry polarity
    cells = json.loads((first_run[0] / "results.json").read_text())["cells"]
    full_probe = [c for c in cells if c["method"] == "probe" and len(c["teachers"]) == 2]
    assert len(full_probe) == 1 and 0.0 <= full_probe[0]["accuracy"] <= 1.0


def test_parallel_jobs_give_the_same_cells_as_one_process(first_run, tmp_path):
    out, first = first_run
    par = run_suite(parse_suite(MICRO), tmp_path / "par", progress=False, jobs=2)
    assert par["cells_run"] == 17 and par["jobs"] == 2
    # every cell is seeded from its own settings: which worker ran it does not matter
    accuracy = {c["key"]: c["accuracy"] for c in first["cells"]}
    assert {c["key"]: c["accuracy"] for c in par["cells"]} == accuracy
    assert par["tuning"] == first["tuning"]
    assert "2 cells at a time" in (tmp_path / "par" / "report.md").read_text()
    again = run_suite(parse_suite(MICRO), tmp_path / "par", progress=False, jobs=2)
    assert again["cells_run"] == 0 and again["cells_reused"] == 17


def test_jobs_must_be_a_positive_whole_number(tmp_path):
    from fusion_aft.errors import UserInputError

    with pytest.raises(UserInputError, match="jobs"):
        run_suite(parse_suite(MICRO), tmp_path / "x", progress=False, jobs=0)
    assert not (tmp_path / "x").exists()


def test_a_failing_worker_stops_the_others_after_their_current_cell(first_run, tmp_path):
    from fusion_aft.bench.cells import Cell
    from fusion_aft.bench.parallel import partition, run_parallel
    from fusion_aft.bench.store import CellStore

    suite = parse_suite({**MICRO, "defaults": {**MICRO["defaults"], "steps": 300}})
    task = suite.resolved()[0]
    teachers = tuple(task.teachers)
    bad = Cell(task.name, "run", "aft", teachers, 100, float("nan"))  # refused by its config
    good = [Cell(task.name, "run", "aft", teachers, seed, 1.0) for seed in range(10)]
    shares = partition([bad, *good], 2)
    assert shares[0][0] == bad and len(shares[1]) == 5
    with pytest.raises(Exception, match=r"beta must be >= 0"):  # raised in the worker
        run_parallel(task, [bad, *good], tmp_path, 2, poll_seconds=0.05)
    store = CellStore(tmp_path)
    finished = [c for c in good if store.get(c) is not None]
    # the healthy worker finished the cell it was training when the other failed, and no more
    assert all(c in shares[1] for c in finished) and len(finished) < len(shares[1])
    assert not list(tmp_path.glob(".stop-*"))


def test_parallel_progress_counts_each_cell_once_when_it_lands(first_run, tmp_path):
    from fusion_aft.bench.cells import Cell
    from fusion_aft.bench.parallel import run_parallel
    from fusion_aft.bench.store import CellStore

    task = parse_suite(MICRO).resolved()[0]
    cells = [Cell(task.name, "run", "aft", tuple(task.teachers), seed, 1.0) for seed in range(4)]
    store = CellStore(tmp_path)
    stale = store.path(cells[0])  # a result of other settings: not finished, trained again
    stale.parent.mkdir(parents=True)
    stale.write_text('{"digest": "other settings"}')
    counts: list[int] = []
    ran = run_parallel(task, cells, tmp_path, 2, on_progress=counts.append, poll_seconds=0.05)
    assert ran == 4 and sum(counts) == 4 and all(n > 0 for n in counts)
    assert all(store.get(c) is not None for c in cells)


def test_the_suite_chooses_beta_as_the_trainer_on_recorded_tuning_cells() -> None:
    """Rotten Tomatoes with the pretrained word-vector student (recorded folds): the holdout
    cross-entropy of β = 30, 100 and 300 lies within one standard error of the lowest (β = 30);
    their holdout accuracies are 70.2, 68.6 and 66.0 %, so the accuracy tie-break takes 30 where
    the largest-β rule took 300. The other methods have one β within the threshold."""
    from fusion_aft.bench.runner import _choose

    folder = Path(__file__).resolve().parents[1] / "benchmarks/results/offline-pretrained-rt/cells"
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("tune-*.json"))]
    assert len(records) == 5 * 4 * 3
    by_accuracy, largest = _choose(records, "accuracy"), _choose(records, "largest")
    aft = by_accuracy["aft"]
    assert aft["min_beta"] == 30.0 and aft["chosen"] == 30.0 and aft["largest_within"] == 300.0
    assert dict(aft["scores"])[30.0] == pytest.approx(0.702, abs=5e-4)
    assert dict(aft["scores"])[300.0] == pytest.approx(0.660, abs=5e-4)
    assert largest["aft"]["chosen"] == 300.0 and largest["aft"]["tie_break"] == "largest"
    expected = {"kd": 30.0, "rkd": 300.0, "ft": 30.0, "btune": 30.0}
    for method, beta in expected.items():
        assert by_accuracy[method]["chosen"] == largest[method]["chosen"] == beta, method


def test_report_marks_a_beta_chosen_where_the_loss_still_falls() -> None:
    from fusion_aft.bench.report import _tuning_section

    def info(edge: bool) -> dict:
        ce = {"3": {"mean": 0.7, "stderr": 0.02}, "30": {"mean": 0.6 if edge else 0.8, "stderr": 0.02}}
        return {"scores": [(3.0, 0.6), (30.0, 0.7)], "cross_entropy": ce, "chosen": 30.0 if edge else 3.0,
                "lowest_at_largest_beta": edge}

    edge = "\n".join(_tuning_section({"tuning": {"rt": {"aft": info(True)}}}))
    assert "| 30* |" in edge and "grid's largest β" in edge
    inside = "\n".join(_tuning_section({"tuning": {"rt": {"aft": info(False)}}}))
    assert "| 3 |" in inside and "grid's largest β" not in inside
    assert "largest whose mean is within one standard error" in inside


def test_report_names_the_largest_beta_the_accuracy_tie_break_passed_over() -> None:
    from fusion_aft.bench.report import _tuning_section

    ce = {"30": {"mean": 0.588, "stderr": 0.017}, "300": {"mean": 0.602, "stderr": 0.006}}
    info = {"scores": [(30.0, 0.702), (300.0, 0.66)], "cross_entropy": ce, "chosen": 30.0,
            "largest_within": 300.0, "tie_break": "accuracy", "lowest_at_largest_beta": False}
    text = "\n".join(_tuning_section({"tuning": {"rt": {"aft": info}}}))
    assert "| 30 (300) |" in text and "highest mean holdout accuracy" in text
    same = "\n".join(_tuning_section({"tuning": {"rt": {"aft": {**info, "largest_within": 30.0}}}}))
    assert "| 30 |" in same
