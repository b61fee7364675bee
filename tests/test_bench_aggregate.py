"""Aggregation maths against hand computations."""

from __future__ import annotations

import math

import pytest

from fusion_aft.bench.aggregate import mean_stderr, normalised_error, normalised_error_by_task, summarise


def test_mean_stderr_by_hand():
    mean, se = mean_stderr([0.70, 0.74, 0.72])
    # sample std: sqrt(((-.02)^2 + .02^2 + 0) / 2) = 0.02; se = 0.02 / sqrt(3)
    assert mean == pytest.approx(0.72)
    assert se == pytest.approx(0.02 / math.sqrt(3))
    m1, s1 = mean_stderr([0.5])
    assert m1 == 0.5 and math.isnan(s1)


def _r(task, method, acc, seed, teachers=("a", "b")):
    return {
        "task": task,
        "kind": "run",
        "method": method,
        "teachers": [] if method == "none" else list(teachers),
        "seed": seed,
        "accuracy": acc,
        "beta": 1.0,
    }


def test_normalised_error_by_hand():
    records = [
        _r("x", "none", 0.60, 0),
        _r("x", "none", 0.80, 1),  # STL mean 0.70, error 0.30
        _r("x", "aft", 0.82, 0),
        _r("x", "aft", 0.78, 1),  # mean 0.80, error 0.20 -> 0.6667
        _r("x", "aft", 0.50, 0, ("a",)),  # a subset: excluded from the summary number
        _r("x", "kd", 0.70, 0),  # error 0.30 -> 1.0
        _r("y", "none", 0.90, 0),  # error 0.10
        _r("y", "aft", 0.92, 0),  # error 0.08 -> 0.8
        _r("y", "kd", 0.85, 0),  # error 0.15 -> 1.5
        {**_r("y", "aft", 0.10, 0), "kind": "tune"},  # tuning rows never count
    ]
    summaries = summarise(records)
    per_task = normalised_error_by_task(summaries)
    assert per_task["x"]["aft"] == pytest.approx(0.2 / 0.3)
    assert per_task["x"]["none"] == pytest.approx(1.0)
    assert per_task["y"]["kd"] == pytest.approx(1.5)
    avg = normalised_error(summaries)
    assert avg["aft"] == pytest.approx((0.2 / 0.3 + 0.8) / 2)
    assert avg["kd"] == pytest.approx((1.0 + 1.5) / 2)
    x_aft = [s for s in summaries if s.task == "x" and s.method == "aft" and s.teachers == ("a", "b")][0]
    assert x_aft.n == 2 and x_aft.mean == pytest.approx(0.80) and x_aft.stderr == pytest.approx(0.02)
