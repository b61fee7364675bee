"""One vocabulary across the commands: short flags, --device, KEY=VALUE options, usage errors."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer

from fusion_aft.cli import app, main


def _commands() -> list[tuple[str, Any]]:
    """(path, command) for every command of the app, groups descended."""
    root = typer.main.get_command(app)
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, cmd: Any) -> None:
        out.append((prefix, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(f"{prefix} {name}".strip(), sub)

    walk("", root)
    return out


def test_every_short_flag_means_one_thing_across_commands() -> None:
    meaning: dict[str, set[str]] = defaultdict(set)
    where: dict[str, list[str]] = defaultdict(list)
    for path, cmd in _commands():
        for param in cmd.params:
            opts = [*param.opts, *param.secondary_opts]
            longs = [o for o in opts if o.startswith("--")]
            for short in (o for o in opts if len(o) == 2 and o.startswith("-")):
                meaning[short].add(longs[0] if longs else param.name)
                where[short].append(path or "fusion-aft")
    clashes = {s: sorted(m) for s, m in meaning.items() if len(m) > 1}
    assert not clashes, clashes
    assert meaning["-o"] == {"--out"} and meaning["-d"] == {"--dataset"}


def test_device_defaults_to_auto_wherever_it_is_taken() -> None:
    seen = []
    for path, cmd in _commands():
        for param in cmd.params:
            if "--device" not in param.opts:
                continue
            seen.append(path)
            helptext = param.help or ""
            assert param.default == "auto" or (param.default is None and "auto" in helptext), path
    assert {"extract", "train", "teachers check", "demo", "bench"} <= set(seen)


def test_one_key_value_parser_reads_words_numbers_and_empty_values_alike() -> None:
    from fusion_aft.cli import datasets, extract, options, train

    got = options.parse_options(
        ["a=True", "b=none", "c=NULL", "d=3", "e=0.5", "f=[1, 2]", "g=", "h=x=y", "i=text"], "--x"
    )
    assert got == {
        "a": True, "b": None, "c": None, "d": 3, "e": 0.5, "f": [1, 2], "g": "", "h": "x=y", "i": "text"
    }  # fmt: skip
    for module in (datasets, extract, train):
        assert getattr(module, "parse_options", options.parse_options) is options.parse_options, module
    with pytest.raises(Exception, match="--dataset-option expects KEY=VALUE"):
        options.parse_options(["oops"], "--dataset-option")


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--jobs", "2"], "--jobs"),
        (["--dry-run"], "--dry-run"),
        (["--device", "cpu"], "--device"),
        (["--task", "overhead"], "--task"),
    ],
)
def test_bench_perf_refuses_flags_it_cannot_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    out = tmp_path / "perf"
    assert main(["bench", "perf", "--out", str(out), "--quick", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and named in err and "\n" not in err
    assert not out.exists()


def test_train_help_states_the_defaults_and_offers_the_config_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fusion_aft.cli.train import _DEFAULTS
    from fusion_aft.training import TrainConfig

    for key, value in _DEFAULTS.items():
        assert TrainConfig.model_fields[key].default == value, key
    cmd = dict(_commands())["train"]
    params = {p.opts[0]: p for p in cmd.params}
    assert "default 1" in params["--beta"].help
    for flag in ("--weight-decay", "--holdout-fraction", "--schedule", "--unlabelled-batch-size"):
        assert flag in params, flag
    assert main(["train", "--dataset", "rotten_tomatoes", "--student", "text_bow", "--method", "none",
                 "--schedule", "steep"]) == 2  # fmt: skip
    assert "schedule" in capsys.readouterr().err


def test_train_flags_reach_the_run_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main([
        "train", "--dataset", "rotten_tomatoes", "--dataset-option", "train_size=40",
        "--dataset-option", "test_size=20", "--student", "text_bow", "--method", "none",
        "--steps", "2", "--batch-size", "8", "--weight-decay", "0.01", "--schedule", "constant",
        "--holdout-fraction", "0.25", "--beta-accuracy-guard", "off", "--out", str(out), "--no-progress",
        "--json",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "config.json").read_text())
    assert (saved["weight_decay"], saved["schedule"], saved["holdout_fraction"]) == (0.01, "constant", 0.25)
    assert saved["beta_accuracy_guard"] == "off"


@pytest.mark.parametrize("value", ["-1", "many", "nan"])
def test_a_bad_accuracy_guard_is_one_clear_error_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out = tmp_path / "run"
    code = main(["train", "--dataset", "rotten_tomatoes", "--student", "text_bow", "--method", "aft",
                 "--teachers", "glove-6b-50d", "--beta", "auto", "--beta-accuracy-guard", value,
                 "--out", str(out)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "beta_accuracy_guard" in err and "'off'" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--stepz", "3"], ["unknown option --stepz", "--steps", "fusion-aft train --help"]),
        (["trian"], ["unknown command 'trian'", "train"]),
        (["extract", "--option", "a=1"], ["unknown option --option", "--dataset-option"]),
        (["train", "--beta"], ["--beta", "requires an argument"]),
    ],
)
def test_usage_errors_are_one_line_with_close_matches(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: list[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for part in expected:
        assert part in err, (part, err)
    assert "Usage:" not in captured.out + captured.err


def test_bench_task_runs_just_the_named_task_and_names_the_close_match_of_a_typo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "offline-pretrained", "--task", "rotten_tomatoes", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in plan["tasks"]] == ["rotten_tomatoes"] and plan["cells"] == 60 + 43
    assert main(["bench", "offline-pretrained", "--task", "rotten-tomatoes", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no task 'rotten-tomatoes'" in err and "did you mean rotten_tomatoes" in err and "\n" not in err


def test_the_train_summary_reports_the_teachers_probe_against_the_student_alone() -> None:
    from fusion_aft.cli.train import _probe_caption

    below = {"accuracy": 0.62, "vs_student_alone": -0.054, "stderr_vs_student_alone": 0.014,
             "below_student_alone": True}
    assert _probe_caption(below) == (
        "teachers' linear probe on the same folds: holdout acc 0.6200 (-5.40 ± 1.40 points vs β=0): "
        "the teachers know less of these labels than the student alone learns"
    )
    above = {**below, "vs_student_alone": 0.03, "below_student_alone": False}
    assert _probe_caption(above).endswith("(+3.00 ± 1.40 points vs β=0)")
    no_zero = {"accuracy": 0.62, "vs_student_alone": None, "below_student_alone": None}
    assert _probe_caption(no_zero) == "teachers' linear probe on the same folds: holdout acc 0.6200"
    assert _probe_caption(None) is None
