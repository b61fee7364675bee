"""``fusion-aft bench perf --section NAME`` runs only the sections named.

That ``--section`` repeats and keeps the order given is shown by the one full harness run of
test_perf_report.py; here one cheap section runs alone, in this process.
"""

from __future__ import annotations

import json

from fusion_aft.cli import main


def test_one_section_runs_alone_and_is_named_in_the_command(tmp_path, capsys) -> None:
    out = tmp_path / "perf"
    args = ["bench", "perf", "--quick", "--no-progress", "--out", str(out)]
    assert main([*args, "--section", "regulariser"]) in (0, None)
    report = json.loads((out / "perf.json").read_text(encoding="utf-8"))
    assert list(report["sections"]) == ["regulariser"]
    assert report["command"].endswith("--quick --section regulariser")
    assert {t["section"] for t in report["targets"]} == {"regulariser"}
    assert (out / "perf.png").is_file()


def test_an_unknown_section_is_one_clear_line(tmp_path, capsys) -> None:
    code = main(["bench", "perf", "--quick", "--no-progress", "--out", str(tmp_path), "--section", "speed"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown perf section(s) ['speed']" in err and "scaling" in err
    assert not (tmp_path / "perf.json").exists()
