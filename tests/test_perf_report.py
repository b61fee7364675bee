"""``fusion-aft bench perf --quick`` runs every section end to end and writes a complete report.

No timing is asserted (shared machines are noisy); the figures' presence, types and internal
consistency are.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusion_aft.bank.synthetic import write_synthetic_bank
from fusion_aft.bench.perf import SECTIONS

#: every section, named in an order of its own: the one harness run also shows that ``--section``
#: repeats and that sections run in the order named
NAMED = ("scaling", "regulariser", "overhead", "memory", "extraction")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("perf")
    sections = [arg for name in NAMED for arg in ("--section", name)]
    proc = subprocess.run(
        [sys.executable, "-m", "fusion_aft.cli", "bench", "perf", "--out", str(out), "--quick",
         "--no-progress", "--json", *sections],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "stdout.json").write_text(proc.stdout, encoding="utf-8")
    return json.loads((out / "perf.json").read_text(encoding="utf-8")), out


def test_json_flag_prints_the_report_it_wrote(quick_report: tuple[dict, Path]) -> None:
    report, out = quick_report
    printed = json.loads((out / "stdout.json").read_text(encoding="utf-8"))
    assert printed == json.loads(json.dumps(report)) and printed["sections"]


def _positive(x: float) -> bool:
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


def test_report_has_every_section_and_the_machine(quick_report: tuple[dict, Path]) -> None:
    report, out = quick_report
    assert report["schema"] == 1 and report["quick"] is True
    assert sorted(NAMED) == sorted(SECTIONS)
    assert list(report["sections"]) == list(NAMED)
    assert report["command"].endswith("--quick " + " ".join(f"--section {name}" for name in NAMED))
    for name, section in report["sections"].items():
        assert "error" not in section, f"{name}: {section.get('error')}"
        assert isinstance(section["pass"], bool)
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cpu_cores"] >= 1
    assert machine["torch_threads"] == 1
    assert {"python", "torch", "numpy", "fusion-aft"} <= set(report["versions"])
    assert report["date"][:2] == "20"
    png = (out / "perf.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_ratios_are_the_ratios_of_the_reported_times(quick_report: tuple[dict, Path]) -> None:
    sec = quick_report[0]["sections"]
    for case in sec["overhead"]["cases"]:
        assert _positive(case["stl_step_ms"]) and _positive(case["aft_step_ms"])
        assert case["ratio"] == pytest.approx(case["aft_step_ms"] / case["stl_step_ms"], rel=1e-3, abs=1e-4)
        assert case["pass"] == (case["ratio"] <= float(case["target"].split()[-1]))
        assert case["regulariser_share"] == pytest.approx(
            case["regulariser_fwd_bwd_ms"] / case["stl_step_ms"], rel=1e-2, abs=1e-3
        )
    assert {c["student"] for c in sec["overhead"]["cases"]} == {"small_cnn", "text_cnn", "mlp", "timm"}
    for case in sec["regulariser"]["cases"]:
        assert case["ratio"] == pytest.approx(case["ours_ms"] / case["reference_ms"], rel=1e-3, abs=1e-4)
        assert max(case["max_abs_diff_float64"].values()) < 1e-10
    for case in sec["extraction"]["cases"]:
        expected = case["extract_rows_per_s"] / case["bare_forward_rows_per_s"]
        assert case["ratio"] == pytest.approx(expected, rel=1e-3, abs=1e-4)
    mem = sec["memory"]
    assert set(mem["runs"]) == {"none", "ours", "ram"}
    for run in mem["runs"].values():
        assert _positive(run["peak_rss_mib"]) and run["steps"] == 20
    assert mem["ours_minus_none_mib"] == pytest.approx(
        mem["runs"]["ours"]["peak_rss_mib"] - mem["runs"]["none"]["peak_rss_mib"], abs=0.2)
    scaling = sec["scaling"]
    n = len(scaling["rows"])
    for key in ("open_s", "index_build_s", "verify_all_chunks_s", "lookup_ms", "step_ms"):
        assert len(scaling[key]) == n and all(_positive(v) for v in scaling[key])


def test_targets_summary_lists_every_figure(quick_report: tuple[dict, Path]) -> None:
    report = quick_report[0]
    targets = report["targets"]
    assert {t["section"] for t in targets} == set(SECTIONS)
    sec = report["sections"]
    expected = sum(len(sec[s]["cases"]) for s in ("overhead", "regulariser", "extraction")) + 1 + 2
    assert len(targets) == expected
    assert all(isinstance(t["pass"], bool) and t["target"] for t in targets)


def test_synthetic_bank_is_a_valid_bank(tmp_path: Path) -> None:
    """The benchmark's banks pass the bank's own full verification and read back by id."""
    from fusion_aft.bank import JointBank, verify_bank

    folder = write_synthetic_bank(tmp_path / "bank", 3000, 8, chunk_rows=1024)
    report = verify_bank(folder)
    assert report.ok, report.problems
    bank = JointBank.open([folder])
    features = np.load(folder / "features.npy")
    rows = bank.rows(["2999", "0", "1500"])
    np.testing.assert_array_equal(rows, features[[2999, 0, 1500]].astype(np.float32))
