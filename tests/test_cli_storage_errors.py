"""A full disk or an unwritable folder during a command is one clear line and exit code 2."""

from __future__ import annotations

import errno

import pytest

import fusion_aft.training.engine as engine
from fusion_aft.cli import main


def test_full_disk_while_checkpointing_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "checkpoints"))

    monkeypatch.setattr(engine, "save_checkpoint", no_space)
    code = main([
        "train", "--dataset", "fashion_mnist", "--dataset-option", "train_size=64",
        "--dataset-option", "test_size=32", "--student", "mlp", "--method", "none",
        "--steps", "2", "--batch-size", "16", "--checkpoint-every", "1", "--no-progress",
        "--out", str(tmp_path / "run"),
    ])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: No space left on device (")
    assert "--resume" in err


def test_other_os_errors_keep_their_traceback(tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(engine, "save_checkpoint", broken)
    with pytest.raises(OSError):
        main([
            "train", "--dataset", "fashion_mnist", "--dataset-option", "train_size=64",
            "--dataset-option", "test_size=32", "--student", "mlp", "--method", "none",
            "--steps", "2", "--batch-size", "16", "--checkpoint-every", "1", "--no-progress",
            "--out", str(tmp_path / "run"),
        ])
