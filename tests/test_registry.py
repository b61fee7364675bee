"""The generic registry: registration, duplicates, close matches, wildcards, entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fusion_aft.errors import DuplicateNameError, UnknownNameError, UserInputError
from fusion_aft.registry import Registry


def test_register_by_decorator_and_call() -> None:
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    def make_alpha() -> str:
        return "a"

    def make_beta() -> str:
        return "b"

    assert reg.register("beta", make_beta) is make_beta
    assert reg.get("alpha") is make_alpha
    assert reg.get("beta")() == "b"
    assert reg.names() == ["alpha", "beta"]
    assert "alpha" in reg and "gamma" not in reg
    assert len(reg) == 2


def test_default_name_is_the_object_name() -> None:
    reg: Registry = Registry("widget")

    @reg.register()
    class Sprocket:
        pass

    assert reg.get("Sprocket") is Sprocket


def _first_alpha() -> int:
    return 1


def test_duplicate_name_is_an_error_naming_the_first_owner() -> None:
    reg: Registry = Registry("widget")
    reg.register("alpha", _first_alpha)
    with pytest.raises(DuplicateNameError, match="widget 'alpha' is already registered") as err:
        reg.register("alpha", lambda: 2)
    assert f"(by {__name__}._first_alpha)" in str(err.value)
    assert reg.get("alpha") is _first_alpha  # the first owner keeps the name
    assert isinstance(DuplicateNameError("x"), UserInputError)


def test_replace_is_explicit() -> None:
    reg: Registry = Registry("widget")
    reg.register("alpha", int)
    reg.register("alpha", float, replace=True)
    assert reg.get("alpha") is float


def test_unknown_name_lists_close_matches() -> None:
    reg: Registry = Registry("objective")
    for name in ("aft", "aft_rbf", "aft_dense", "kd", "rkd", "none"):
        reg.register(name, object())
    with pytest.raises(UnknownNameError) as info:
        reg.get("aft_rfb")
    message = str(info.value)
    assert message.startswith("unknown objective 'aft_rfb'; close matches: ")
    assert "aft_rbf" in message
    assert "\n" not in message
    # an unknown-name error is also a KeyError, but prints without quotes
    assert isinstance(info.value, KeyError)
    assert not message.startswith("'")


def test_unknown_name_without_near_match_lists_known_names() -> None:
    reg: Registry = Registry("dataset")
    reg.register("fashion_mnist", object())
    with pytest.raises(UnknownNameError, match="known: fashion_mnist"):
        reg.get("zzzz")


def test_wildcard_listing() -> None:
    reg: Registry = Registry("teacher")
    for name in ("dinov2-vit-s", "dinov2-vit-b", "clip-vit-l", "gpt2"):
        reg.register(name, object())
    assert reg.names("dinov2-*") == ["dinov2-vit-b", "dinov2-vit-s"]
    assert reg.names("*vit-l") == ["clip-vit-l"]


def test_unregister() -> None:
    reg: Registry = Registry("widget")
    reg.register("alpha", int)
    reg.unregister("alpha")
    assert "alpha" not in reg
    with pytest.raises(UnknownNameError):
        reg.unregister("alpha")


def test_entry_point_discovery(tmp_path) -> None:
    """A package installed with an entry point in the group is found on first lookup."""
    pkg = tmp_path / "widgetplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def make_gizmo():\n    return 'gizmo'\n")
    dist = tmp_path / "widgetplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: widgetplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[demo.widgets]\ngizmo = widgetplugin:make_gizmo\n")
    code = textwrap.dedent(
        """
        from fusion_aft.registry import Registry
        reg = Registry("widget", entry_point_group="demo.widgets")
        print(reg.names(), reg.get("gizmo")())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        check=True,
    )
    assert out.stdout.strip() == "['gizmo'] gizmo"


def test_broken_plugin_does_not_break_the_registry(tmp_path, caplog) -> None:
    dist = tmp_path / "brokenplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[demo.broken]\nbad = no_such_module:thing\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib.metadata as md

        md.distributions.cache_clear() if hasattr(md.distributions, "cache_clear") else None
        reg: Registry = Registry("widget", entry_point_group="demo.broken")
        reg.register("ok", int)
        assert reg.names() == ["ok"]
        assert any("could not load widget plugin 'bad'" in r.getMessage() for r in caplog.records)
    finally:
        sys.path.remove(str(tmp_path))
