"""Suite files: structure validation, name checks with close matches, defaults, shipped suites."""

from __future__ import annotations

import pytest

from fusion_aft.bench.suite import list_suites, load_suite, parse_suite, parse_teacher_ref
from fusion_aft.bench.validate import check_names, validate_names
from fusion_aft.errors import UserInputError

BASE = {
    "name": "micro",
    "defaults": {"methods": ["none", "aft", "probe"], "seeds": [0, 1], "steps": 5},
    "tasks": [
        {
            "name": "rt",
            "dataset": "rotten_tomatoes",
            "labels": 40,
            "student": "text_cnn",
            "teachers": ["all-minilm-l6-v2", "glove-6b-50d"],
        }
    ],
}


def _with(**changes):
    data = {**BASE, "tasks": [dict(BASE["tasks"][0])], "defaults": dict(BASE["defaults"])}
    for path, value in changes.items():
        where, key = path.split("__")
        target = data["tasks"][0] if where == "task" else data[where] if where != "top" else data
        target[key] = value
    return data


def test_unknown_key_is_an_error_naming_the_key_and_a_close_match():
    with pytest.raises(UserInputError, match=r"unknown key 'tasks\.0\.teacher'.*teachers"):
        parse_suite(_with(task__teacher=["x"]))
    with pytest.raises(UserInputError, match=r"unknown key 'defaults\.seed'.*seeds"):
        parse_suite(_with(defaults__seed=[0]))


def test_wrong_types_and_duplicates_are_errors():
    with pytest.raises(UserInputError, match="steps"):
        parse_suite(_with(defaults__steps=-3))
    with pytest.raises(UserInputError, match="distinct"):
        parse_suite(_with(task__teachers=["glove-6b-50d", "glove-6b-50d"]))
    data = _with()
    data["tasks"].append(dict(data["tasks"][0]))
    with pytest.raises(UserInputError, match="unique; repeated: rt"):
        parse_suite(data)


def test_unknown_method_teacher_dataset_list_close_matches():
    suite = parse_suite(
        _with(
            defaults__methods=["none", "atf"],
            task__dataset="rotten_tomato",
            task__teachers=["all-minilm-l6-v3"],
        )
    )
    problems = {p.kind: p for p in check_names(suite)}
    assert problems["method"].name == "atf" and "aft" in problems["method"].near
    assert problems["dataset"].name == "rotten_tomato" and "rotten_tomatoes" in problems["dataset"].near
    assert problems["teacher"].name == "all-minilm-l6-v3" and "all-minilm-l6-v2" in problems["teacher"].near
    with pytest.raises(UserInputError, match=r"unknown method 'atf'; close matches: aft.*2 more"):
        validate_names(suite)


def test_known_names_pass_and_defaults_fill_tasks():
    suite = parse_suite(_with(task__seeds=[7]))
    validate_names(suite)
    task = suite.resolved()[0]
    assert task.seeds == [7] and task.methods == ["none", "aft", "probe"] and task.steps == 5
    assert task.batch_size == 128 and task.ablation_method == "aft"
    assert task.beta_for("none") == 0.0 and task.beta_for("aft") == 1.0


def test_teacher_refs_parse_options():
    assert parse_teacher_ref("efficientnet-lite0?image_size=64") == (
        "efficientnet-lite0",
        {"image_size": "64"},
    )
    assert parse_teacher_ref("glove-6b-50d") == ("glove-6b-50d", {})
    with pytest.raises(UserInputError, match="key=value"):
        parse_teacher_ref("x?image_size")
    # one reader of references: the suite reads them as teachers.get does
    from fusion_aft.teachers.card import parse_ref

    for ref in ("efficientnet-lite0?image_size=64&mean=0.5%2C0.5%2C0.5", "a?prompt=a%20photo"):
        assert parse_teacher_ref(ref) == parse_ref(ref)
    with pytest.raises(UserInputError, match="given twice"):
        parse_teacher_ref("x?image_size=64&image_size=96")


def test_shipped_suites_validate():
    names = list_suites()
    assert {"offline", "offline-pretrained", "paper-vision", "paper-nlp", "paper-multimodal"} <= set(names)
    for name in names:
        suite = load_suite(name)
        assert suite.tasks and suite.name == name
    validate_names(load_suite("offline"))
    # the pretrained variant runs the same tasks and teachers with the default pretrained students
    scratch = {t.name: t for t in load_suite("offline").resolved()}
    pretrained = {t.name: t for t in load_suite("offline-pretrained").resolved()}
    assert set(pretrained) == set(scratch)
    assert {n: t.student for n, t in pretrained.items()} == {
        "fashion_mnist": "image_lite0", "rotten_tomatoes": "text_glove", "emoji": "image_lite0"
    }
    assert all(pretrained[n].teachers == scratch[n].teachers for n in scratch)
    validate_names(load_suite("offline-pretrained"))


def test_unknown_suite_name_suggests_close_matches(tmp_path):
    with pytest.raises(UserInputError, match="close matches: offline"):
        load_suite("offlien")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[[tasks]\n")
    with pytest.raises(UserInputError, match="not valid TOML"):
        load_suite(bad)


def test_only_keeps_the_named_tasks_and_names_the_close_match_of_a_typo():
    suite = load_suite("offline-pretrained")
    rt = suite.only(["rotten_tomatoes"])
    assert [t.name for t in rt.tasks] == ["rotten_tomatoes"] and rt.name == suite.name
    assert rt.resolved()[0] == suite.task("rotten_tomatoes")
    assert rt.picked_tasks == ["rotten_tomatoes"] and suite.picked_tasks is None
    # the suite's order, whatever the order asked
    assert [t.name for t in suite.only(["emoji", "fashion_mnist"]).tasks] == ["fashion_mnist", "emoji"]
    typo = r"no task 'rotten_tomato' \(did you mean rotten_tomatoes\?\); its tasks"
    with pytest.raises(UserInputError, match=typo):
        suite.only(["rotten_tomato"])


def test_the_beta_tie_break_is_the_trainers_by_default_and_can_be_the_largest():
    from fusion_aft.training.config import TrainConfig

    trainer = TrainConfig.model_fields["beta_tie_break"].default
    assert parse_suite(BASE).resolved()[0].beta_tie_break == trainer == "accuracy"
    largest = _with(defaults__beta_tie_break="largest")
    assert parse_suite(largest).resolved()[0].beta_tie_break == "largest"
    with pytest.raises(UserInputError, match="beta_tie_break"):
        parse_suite(_with(defaults__beta_tie_break="smallest"))


def test_reading_a_suite_does_not_load_torch():
    import subprocess
    import sys

    code = (
        "import sys, fusion_aft.bench.suite as s; s.load_suite('offline'); "
        "assert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
