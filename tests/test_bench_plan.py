"""--dry-run: the plan of the paper suites lists what is missing; storage from widths × rows."""

from __future__ import annotations

import json

import pytest
import torch

from fusion_aft.bench.plan import make_plan
from fusion_aft.bench.suite import load_suite
from fusion_aft.cli import main


def test_paper_suites_plan_lists_missing_pieces():
    for name in ("paper-vision", "paper-nlp", "paper-multimodal"):
        plan = make_plan(load_suite(name))
        text = "\n".join(plan.missing)
        if not torch.cuda.is_available():
            assert "no CUDA GPU" in text
        assert "teacher" in text  # hub teachers are not available offline
        assert plan.n_cells > 0 and plan.seconds("gpu") > 0
    vision = make_plan(load_suite("paper-vision"))
    assert any("cifar10" in m for m in vision.missing)
    # 6 datasets × 3 students; each: 5 methods × 7 β tuning cells
    assert len(vision.tasks) == 18 and all(
        t.n_tune_cells == 35 * 3 for t in vision.tasks
    )  # 5 methods × 7 β × 3 folds


def test_offline_plan_storage_is_rows_times_width_in_fp16():
    plan = make_plan(load_suite("offline"))
    fm = next(t for t in plan.tasks if t.dataset == "fashion_mnist")
    lite0 = next(b for b in fm.banks if b["teacher"].startswith("efficientnet-lite0"))
    rows = fm.n_train_rows + fm.n_test_rows
    assert lite0["width"] == 1280 and lite0["bytes"] == rows * 1280 * 2


def test_dry_run_cli_json(capsys):
    assert main(["bench", "paper-nlp", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "paper-nlp" and out["cells"] > 0 and out["missing"]


def test_bench_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["bench", "offlin", "--dry-run"]) == 2
    assert "close matches: offline" in capsys.readouterr().err
    bad = tmp_path / "s.toml"
    bad.write_text(
        'name = "s"\n[[tasks]]\nname = "a"\ndataset = "emoji"\nstudent = "mlp"\nteachers = ["x"]\nbogus = 1\n'
    )
    assert main(["bench", str(bad), "--dry-run"]) == 2
    assert "unknown key 'tasks.0.bogus'" in capsys.readouterr().err
    out = tmp_path / "never"
    assert main(["bench", "offline", "--jobs", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "jobs must be a whole number >= 1" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_training_flops_count_per_example_weights_not_tokens_or_embedding_tables():
    """An MLP applies its weights once per example and a bag of words only looks its table up:
    neither is multiplied by a sequence length (that estimate once said 10 days for `offline`)."""
    import fusion_aft

    suite = load_suite("offline")
    plan = make_plan(suite)
    for task, tp in zip(suite.resolved(), plan.tasks, strict=True):
        student = fusion_aft.students.create(task.student, 10, **task.student_options)
        lookups = (torch.nn.EmbeddingBag, torch.nn.Embedding)
        tables = sum(p.numel() for m in student.modules() if isinstance(m, lookups) for p in m.parameters())
        per_example = sum(p.numel() for p in student.parameters()) - tables
        rows = task.batch_size * 2  # labelled + unlabelled rows per step
        runs = tp.n_train_runs - tp.n_tune_cells * (1 - task.tune_steps_fraction)  # tuning: shorter cells
        assert tp.train_flops == pytest.approx(6.0 * per_example * rows * task.steps * runs)
    assert plan.seconds("cpu") < 6 * 3600
