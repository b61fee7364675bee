"""No code path unpickles a file a user did not create: a scan of the package source with ``ast``.

Refused anywhere under ``fusion_aft/``:

* ``torch.load`` without ``weights_only=True`` (tensors and plain containers only);
* ``pickle``/``cPickle``/``dill``/``joblib``/``cloudpickle`` ``load(s)`` and ``pandas.read_pickle``;
* ``np.load``/``numpy.load`` with ``allow_pickle`` set to anything but ``False``;
* ``yaml.load`` without ``SafeLoader`` (``yaml.safe_load`` is fine), ``eval``, ``exec``;
* ``trust_remote_code=True`` written as a literal (it must come from the card and the caller).

The scanner itself is tested on snippets, so a broken scanner cannot pass silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fusion_aft

PACKAGE = Path(fusion_aft.__file__).resolve().parent
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def violations(source: str, filename: str = "<src>") -> list[str]:
    """Unsafe loading calls in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> module or module.attr it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        where = f"{filename}:{node.lineno}"
        module, _, func = full.rpartition(".")
        if full == "torch.load" and not _is_const(_kw(node, "weights_only"), True):
            out.append(f"{where}: torch.load without weights_only=True")
        elif module.split(".")[0] in PICKLERS and func in ("load", "loads", "Unpickler"):
            out.append(f"{where}: {full} unpickles")
        elif func == "read_pickle":
            out.append(f"{where}: {full} unpickles")
        elif full in ("numpy.load", "np.load"):
            allow = _kw(node, "allow_pickle")
            if allow is not None and not _is_const(allow, False):
                out.append(f"{where}: {full} with allow_pickle")
        elif full == "yaml.load":
            loader = _kw(node, "Loader")
            if loader is None or "Safe" not in _dotted(loader):
                out.append(f"{where}: yaml.load without SafeLoader")
        elif full in ("eval", "exec", "builtins.eval", "builtins.exec"):
            out.append(f"{where}: {full}")
        if _is_const(_kw(node, "trust_remote_code"), True):
            out.append(f"{where}: trust_remote_code=True literal")
    return out


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_package_has_no_unsafe_loading() -> None:
    files = _sources()
    assert len(files) > 50
    found = [v for path in files for v in violations(path.read_text(encoding="utf-8"), str(path))]
    assert not found, "\n".join(found)


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    """The project does call torch.load (checkpoints, .pth weights): each call is weights_only."""
    calls = 0
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _dotted(node.func) == "torch.load":
                calls += 1
                assert _is_const(_kw(node, "weights_only"), True), f"{path}:{node.lineno}"
    assert calls >= 1


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import torch\ntorch.load(p)", "torch.load without weights_only=True"),
        ("import torch\ntorch.load(p, weights_only=False)", "torch.load without weights_only=True"),
        ("import torch as T\nT.load(p, weights_only=flag)", "torch.load without weights_only=True"),
        ("from torch import load\nload(p)", "torch.load without weights_only=True"),
        ("import pickle\npickle.load(f)", "pickle.load unpickles"),
        ("import pickle as pk\npk.loads(b)", "pickle.loads unpickles"),
        ("from pickle import load\nload(f)", "pickle.load unpickles"),
        ("import joblib\njoblib.load(p)", "joblib.load unpickles"),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", "numpy.load with allow_pickle"),
        ("import numpy\nnumpy.load(p, allow_pickle=flag)", "numpy.load with allow_pickle"),
        ("import pandas as pd\npd.read_pickle(p)", "pandas.read_pickle unpickles"),
        ("import yaml\nyaml.load(s)", "yaml.load without SafeLoader"),
        ("eval(text)", "eval"),
        ("exec(code)", "exec"),
        ("m.from_pretrained(p, trust_remote_code=True)", "trust_remote_code=True literal"),
    ],
)
def test_the_scanner_finds_each_unsafe_call(snippet: str, expected: str) -> None:
    found = violations(snippet)
    assert len(found) == 1 and found[0].endswith(expected), found


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
        "import numpy as np\nnp.load(p)\nnp.load(p, mmap_mode='r', allow_pickle=False)",
        "import yaml\nyaml.safe_load(s)\nyaml.load(s, Loader=yaml.SafeLoader)",
        "import json\njson.loads(s)",
        "m.from_pretrained(p, trust_remote_code=trust_remote_code and card.trust_remote_code)",
    ],
)
def test_the_scanner_accepts_safe_calls(snippet: str) -> None:
    assert violations(snippet) == []
