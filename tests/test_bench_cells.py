"""Cell enumeration: tuning grid, teacher subsets of the ablation, probe once, stable keys."""

from __future__ import annotations

from fusion_aft.bench.cells import beta_grid, run_cells, teacher_subsets, tune_cells
from fusion_aft.bench.suite import parse_suite


def _task(**over):
    task = {
        "name": "t",
        "dataset": "emoji",
        "labels": 10,
        "student": "small_cnn",
        "teachers": ["a", "b", "c"],
    }
    task.update(over)
    suite = {
        "name": "s",
        "defaults": {
            "methods": ["none", "kd", "aft", "probe"],
            "seeds": [0, 1, 2],
            "steps": 3,
            "beta": {"kd": [1.0, 10.0], "aft": [0.5, 5.0, 50.0]},
        },
        "tasks": [task],
    }
    return parse_suite(suite).resolved()[0]


def test_teacher_subsets_singles_leave_one_out_then_full():
    assert teacher_subsets(["a", "b"]) == [("a",), ("b",), ("a", "b")]
    assert teacher_subsets(["a", "b", "c"]) == [
        ("a",),
        ("b",),
        ("c",),
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("a", "b", "c"),
    ]
    assert teacher_subsets(["a"]) == [("a",)]


def test_tune_cells_one_per_beta_and_fold_on_the_tuning_seed():
    task = _task()
    cells = tune_cells(task)
    # one cell per (β, fold) of the 3 default folds
    assert [(c.method, c.beta, c.fold) for c in cells] == [
        (m, b, f)
        for m, b in [("kd", 1.0), ("kd", 10.0), ("aft", 0.5), ("aft", 5.0), ("aft", 50.0)]
        for f in range(3)
    ]
    assert len({c.key for c in cells}) == 15 and cells[1].key.endswith("-b1-f1-s0")
    assert {c.seed for c in cells} == {0} and {c.teachers for c in cells} == {("a", "b", "c")}
    assert beta_grid(task, "none") is None


def test_run_cells_count_and_beta():
    task = _task()
    cells = run_cells(task, {"kd": 10.0, "aft": 5.0})
    by = {}
    for c in cells:
        by.setdefault(c.method, []).append(c)
    assert len(by["none"]) == 3 and all(c.teachers == () and c.beta == 0.0 for c in by["none"])
    assert len(by["kd"]) == 3 and {c.beta for c in by["kd"]} == {10.0}
    assert len(by["aft"]) == 7 * 3 and {c.beta for c in by["aft"]} == {5.0}
    assert len(by["probe"]) == 7 and {c.seed for c in by["probe"]} == {0}
    assert len({c.key for c in cells}) == len(cells)
    untuned = run_cells(task)
    assert {c.beta for c in untuned if c.method == "aft"} == {None}


def test_no_ablation_keeps_full_set_only_and_fixed_beta():
    task = _task(ablation=False, beta={"aft": 2.0})
    cells = run_cells(task)
    assert {c.teachers for c in cells if c.method in ("aft", "probe")} == {("a", "b", "c")}
    assert {c.beta for c in cells if c.method == "aft"} == {2.0}
    assert [c.method for c in tune_cells(task)] == ["kd"] * 6


def test_digest_changes_with_settings_but_key_does_not():
    a = run_cells(_task())[0]
    b = run_cells(_task(steps=4))[0]
    assert a.key == b.key and a.digest() != b.digest()
    assert a.digest() == run_cells(_task())[0].digest()
