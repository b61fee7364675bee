"""The result of ranking teachers: a table, a JSON record and a PNG (subset scores + CKA heat map)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SubsetScore", "TeacherRanking", "TeacherScore"]


@dataclass
class TeacherScore:
    """One teacher's row of the ranking."""

    teacher: str
    width: int
    params: int | None
    alignment: float
    alignment_se: float
    probe_accuracy: float
    probe_se: float
    logme: float
    seconds_per_1k_rows: float | None
    cost_source: str
    bank_bytes: int | None
    recommended: bool
    rank: int = 0


@dataclass
class SubsetScore:
    """One subset: kernel-target alignment of its mean kernel and the cross-validated probe
    accuracy of its concatenated features, each with its standard error."""

    teachers: list[str]
    alignment: float
    alignment_se: float
    accuracy: float
    se: float
    width: int

    def value(self, score: str) -> float:
        """The subset's ``score`` (``"alignment"`` or ``"probe"``)."""
        return self.alignment if score == "alignment" else self.accuracy

    def value_se(self, score: str) -> float:
        """The standard error of the subset's ``score``."""
        return self.alignment_se if score == "alignment" else self.se

    def describe(self, score: str) -> str:
        """The subset's ``score`` as text (an alignment, or a probe accuracy in %)."""
        return _describe(self.value(score), score)


def _describe(value: float, score: str) -> str:
    return f"alignment {value:.4f}" if score == "alignment" else f"probe {100 * value:.1f} %"


@dataclass
class TeacherRanking:
    """Per-teacher scores, pairwise CKA, subset scores and the recommended subset."""

    dataset: str
    n_rows: int
    classes: int
    folds: int
    repeats: int
    c: float
    #: what orders subsets and drives the selection: "alignment" or "probe"
    score: str
    teachers: list[TeacherScore]
    cka_teachers: list[str]
    cka: list[list[float]]
    subsets: list[SubsetScore]
    recommended: list[str]
    selection: list[dict[str, Any]]
    excluded: dict[str, str] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: the out-of-fold scores behind ``subsets`` (per-row correctness included); not serialised
    probe_scores: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    #: the alignment scores behind ``subsets`` (per left-out fold); not serialised
    alignment_scores: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def subset_score(self, teachers: list[str] | tuple[str, ...]) -> SubsetScore | None:
        """The score of the subset made of ``teachers`` (any order), if it was scored."""
        want = set(teachers)
        return next((s for s in self.subsets if set(s.teachers) == want), None)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("probe_scores", None)
        out.pop("alignment_scores", None)
        for step in out["selection"]:
            step["subset"] = list(step["subset"])
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        """The ranking as JSON text (also written to ``path`` when given)."""
        text = json.dumps(self.as_dict(), indent=1)
        if path is not None:
            from fusion_aft.fileio import atomic_write_text

            atomic_write_text(Path(path), text + "\n")
        return text

    def table(self) -> str:
        """A Markdown table: one row per teacher, best first, then the recommendation."""
        by = "kernel alignment" if self.score == "alignment" else "probe accuracy"
        lines = [
            f"Teachers ranked by {by} on {self.n_rows} labelled training rows of `{self.dataset}` "
            f"({self.classes} classes; {self.folds}-fold probe"
            + (f" × {self.repeats}" if self.repeats > 1 else "")
            + ")",
            "",
            "| rank | teacher | kernel alignment | probe acc % (CV) | LogME | width | params "
            "| extract s / 1k rows | rec. |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in self.teachers:
            cost = "—" if t.seconds_per_1k_rows is None else f"{t.seconds_per_1k_rows:.2f}"
            if t.cost_source not in ("measured", "manifest", "unknown"):
                cost += f" ({t.cost_source})"
            params = "—" if t.params is None else f"{t.params / 1e6:.1f} M"
            lines.append(
                f"| {t.rank} | {t.teacher} | {t.alignment:.4f} ± {t.alignment_se:.4f} | "
                f"{100 * t.probe_accuracy:.1f} ± {100 * t.probe_se:.1f} | "
                f"{t.logme:.3f} | {t.width} | {params} | {cost} | {'yes' if t.recommended else ''} |"
            )
        rec = self.subset_score(self.recommended)
        lines += [
            "",
            f"Recommended: {' + '.join(self.recommended)}"
            + (f" ({rec.describe('alignment')}, {rec.describe('probe')})" if rec else ""),
        ]
        for step in self.selection:
            lines.append(
                f"- {' + '.join(step['subset'])}: {_describe(step['score'], self.score)}, {step['reason']}"
            )
        for t, why in self.excluded.items():
            lines.append(f"- {t}: outside the budget ({why})")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """The ranking's score per teacher and per scored subset (left), pairwise CKA heat map (right)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        path = Path(path)
        fig, (ax1, ax2) = plt.subplots(
            1,
            2,
            figsize=(11, 3.8 + 0.15 * len(self.subsets)),
            dpi=120,
            gridspec_kw={"width_ratios": [1.4, 1]},
        )
        rec = set(self.recommended)
        subsets = sorted(self.subsets, key=lambda s: s.value(self.score))
        scale = 1.0 if self.score == "alignment" else 100.0
        labels = [" + ".join(s.teachers) for s in subsets]
        colors = [
            "C2" if set(s.teachers) == rec else ("C0" if len(s.teachers) == 1 else "C7") for s in subsets
        ]
        ys = np.arange(len(subsets))
        value = [scale * s.value(self.score) for s in subsets]
        err = [scale * s.value_se(self.score) for s in subsets]
        ax1.barh(ys, value, xerr=err, color=colors)
        ax1.set_yticks(ys, labels, fontsize=7)
        lo = min(v - 2 * e for v, e in zip(value, err, strict=True))
        ax1.set_xlim(max(0.0, lo), max(v + 2 * e for v, e in zip(value, err, strict=True)))
        ax1.set_xlabel(
            "kernel-target alignment (± jackknife SE)"
            if self.score == "alignment"
            else "cross-validated probe accuracy % (± SE)"
        )
        ax1.set_title("single teachers (blue), subsets (grey), recommended (green)", fontsize=9)
        m = np.asarray(self.cka)
        im = ax2.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ticks = range(len(self.cka_teachers))
        ax2.set_xticks(list(ticks), self.cka_teachers, rotation=30, ha="right", fontsize=7)
        ax2.set_yticks(list(ticks), self.cka_teachers, fontsize=7)
        for i in ticks:
            for j in ticks:
                ax2.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if m[i, j] > 0.6 else "white",
                )
        ax2.set_title("linear CKA (1 = the same information)", fontsize=9)
        fig.colorbar(im, ax=ax2, fraction=0.046)
        fig.suptitle(f"teacher ranking: {self.dataset} ({self.n_rows} labelled training rows)", fontsize=10)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
        return path
