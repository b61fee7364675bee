"""μ attribution: which teacher (and which of its features) an AFT student actually used.

AFT learns one weight ``μ_i = sigmoid(s_i)`` per teacher feature (Qiu et al. 2024, §3.2); a
feature whose μ falls towards 0 is switched off in the kernel the student is matched to. Per
teacher this module reports

* ``share``: the teacher's part of the total μ mass, ``Σ_{i∈m} μ_i / Σ_i μ_i`` (shares sum to 1;
  a wider teacher starts with a larger share, see ``initial_share``);
* ``mean``: its mean μ (width-independent; 0.5 at initialisation);
* ``entropy``: the normalised entropy of its μ profile (1 = every feature weighted equally,
  towards 0 = a few features carry it);
* ``top``: its features with the largest μ.

The objective is rebuilt from ``objective.json`` with :func:`fusion_aft.objectives.from_config`
and its saved state, so the report needs neither the teachers nor the data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from fusion_aft.errors import UserInputError

PLOT_FILE = "mu_attribution.png"


def load_objective(run_dir: str | Path) -> Any:
    """The trained objective of a run folder (from ``objective.json`` + ``objective.safetensors``)."""
    from safetensors.torch import load_model

    import fusion_aft.objectives as objectives

    run_dir = Path(run_dir)
    desc_path, weights = run_dir / "objective.json", run_dir / "objective.safetensors"
    if not run_dir.is_dir():
        raise UserInputError(
            f"run folder {run_dir} does not exist; pass a folder written by `fusion-aft train`"
        )
    if not desc_path.is_file() or not weights.is_file():
        raise UserInputError(
            f"{run_dir} holds no finished run (objective.json / objective.safetensors missing); "
            "finish it with `fusion-aft train ... --resume` first"
        )
    desc = json.loads(desc_path.read_text(encoding="utf8"))
    objective = objectives.from_config(desc)
    load_model(objective, str(weights), strict=True)
    return objective.eval()


def _entropy(p: torch.Tensor) -> float:
    if p.numel() <= 1:
        return 1.0
    total = float(p.sum())
    if total <= 0:
        return 0.0
    q = p / total
    h = -float((q * torch.log(q.clamp_min(1e-300))).sum())
    return h / math.log(p.numel())


def attribution(run_dir: str | Path, top: int = 10, plot: bool = True) -> dict[str, Any]:
    """The μ report of a finished AFT run (also drawn to ``mu_attribution.png`` when ``plot``).

    Raises:
        UserInputError: when the run's objective learns no μ (every non-AFT method).
    """
    run_dir = Path(run_dir)
    objective = load_objective(run_dir)
    name = getattr(objective, "name", type(objective).__name__)
    if not hasattr(objective, "mu") or not hasattr(objective, "mu_by_teacher"):
        result = run_dir / "result.json"
        summary = json.loads(result.read_text(encoding="utf8")) if result.is_file() else {}
        if summary.get("beta") == 0 and summary.get("method") not in (None, "none"):
            vetoed = summary.get("beta_accuracy_vetoed")
            why = (f"; the sweep's β = {vetoed:g} had a lower holdout accuracy than the student alone"
                   if vetoed is not None else "")
            raise UserInputError(
                f"run {run_dir} chose β = 0 ({summary['method']} with the regulariser switched off{why}), "
                "so it trained the student alone and learned no feature weights; see its sweep.png, or "
                "train with a fixed --beta to get μ"
            )
        raise UserInputError(
            f"run {run_dir} was trained with method '{name}', which learns no feature weights; "
            "μ exists only for AFT objectives (aft, aft_rbf, aft_dense, ...)"
        )
    mu = objective.mu.detach().double().cpu().reshape(-1)
    slices = _slices(objective)
    total = float(mu.sum())
    width_total = sum(s.stop - s.start for s in slices.values())
    cards = _teacher_cards(run_dir)
    teachers = []
    for teacher, sl in slices.items():
        m = mu[sl]
        k = min(top, m.numel())
        values, index = torch.topk(m, k) if k else (m[:0], torch.zeros(0, dtype=torch.long))
        card = cards.get(teacher, {})
        teachers.append(
            {
                "teacher": teacher,
                "width": int(m.numel()),
                "share": float(m.sum()) / total if total > 0 else 0.0,
                "initial_share": m.numel() / width_total,
                "mean": float(m.mean()),
                "std": float(m.std()) if m.numel() > 1 else 0.0,
                "min": float(m.min()),
                "max": float(m.max()),
                "entropy": _entropy(m),
                "params": card.get("params"),
                "top": [{"feature": int(i), "mu": float(v)} for v, i in zip(values, index, strict=True)],
            }
        )
    report: dict[str, Any] = {
        "run_dir": str(run_dir),
        "method": name,
        "dim": int(mu.numel()),
        "total_mu": total,
        "teachers": teachers,
        "best_teacher": max(teachers, key=lambda t: t["mean"])["teacher"] if teachers else None,
    }
    if plot:
        report["plot"] = str(plot_attribution(mu, slices, teachers, run_dir / PLOT_FILE))
    return report


def _slices(objective: Any) -> dict[str, slice]:
    if hasattr(objective, "teacher_slices"):
        return dict(objective.teacher_slices())
    out, start = {}, 0
    for teacher, width in objective.teacher_dims.items():
        out[teacher] = slice(start, start + int(width))
        start += int(width)
    return out


def _teacher_cards(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / "provenance.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError:
        return {}
    out = {}
    for t in data.get("teachers", []):
        out[t.get("name")] = t
        out[t.get("ref")] = t
    return out


def plot_attribution(
    mu: torch.Tensor, slices: dict[str, slice], teachers: list[dict[str, Any]], path: Path
) -> Path:
    """Left: each teacher's share of μ (initial share dashed). Right: each teacher's μ, sorted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    names = [t["teacher"] for t in teachers]
    xs = range(len(names))
    bars = ax1.bar(xs, [t["share"] for t in teachers], color=[f"C{i}" for i in xs])
    ax1.scatter(
        xs,
        [t["initial_share"] for t in teachers],
        marker="_",
        s=600,
        color="black",
        label="share at init (μ = 0.5)",
        zorder=3,
    )
    for bar, t in zip(bars, teachers, strict=True):
        ax1.annotate(
            f"mean μ {t['mean']:.2f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax1.set_xticks(list(xs), names, rotation=15, ha="right", fontsize=8)
    ax1.set_ylabel("share of total μ")
    ax1.set_ylim(0, max([t["share"] for t in teachers] + [t["initial_share"] for t in teachers]) * 1.2 or 1)
    ax1.legend(fontsize=8, loc="upper right")
    ax1.set_title("μ mass per teacher", fontsize=10)
    for i, (teacher, sl) in enumerate(slices.items()):
        profile = torch.sort(mu[sl], descending=True).values.numpy()
        rank = [(j + 0.5) / len(profile) for j in range(len(profile))]
        ax2.plot(rank, profile, color=f"C{i}", label=f"{teacher} ({len(profile)})")
    ax2.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="init (0.5)")
    ax2.set_xlabel("feature rank (fraction of the teacher's width)")
    ax2.set_ylabel("μ")
    ax2.set_title("sorted μ profile per teacher", fontsize=10)
    ax2.legend(fontsize=8)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
