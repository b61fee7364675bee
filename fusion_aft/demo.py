"""The main job end to end on one real offline task, in a few minutes on a laptop CPU.

Emoji images → their Unicode group, 300 labelled rows: a vision teacher reads the image and a
text teacher reads the caption (a cross-modal pair), while the student sees only the image. The
demo extracts both teachers into cached banks, trains the student alone (STL) and with AFT (β
tuned by 3-fold cross-validation on the labelled rows), reports μ per teacher (table + PNG),
exports the student and lets it label one test image with no teacher loaded. Everything lands in one folder::

    runs/demo/
      stl/  aft/            two run folders (config, metrics, sweep, student, result)
      aft/mu_attribution.png
      student/              the exported student (model card inside)
      example.png           the test image the exported student labels
      demo.json             the summary printed at the end
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_json

log = logging.getLogger(__name__)

MARKER = "demo.json"
#: what a previous demo wrote into its folder; removed before a fresh demo
OUTPUTS = ("stl", "aft", "student", "example.png", MARKER)


@dataclass(frozen=True)
class DemoPlan:
    """One task, one student, two teachers: what :func:`run_demo` trains."""

    dataset: str = "emoji"
    dataset_options: dict[str, Any] = field(default_factory=lambda: {"test_fraction": 0.3})
    n_labels: int = 300
    teachers: tuple[str, ...] = ("efficientnet-lite0?image_size=64", "all-minilm-l6-v2")
    student: str = "mlp"
    student_options: dict[str, Any] = field(
        default_factory=lambda: {"hidden": [256, 128], "in_channels": 3, "image_size": 32}
    )
    steps: int = 1000
    lr: float = 2e-3
    beta_grid: tuple[float, ...] = (3.0, 10.0, 30.0)
    seed: int = 0

    def train_kwargs(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "dataset_options": dict(self.dataset_options),
            "n_labels": self.n_labels,
            "use_unlabelled": True,
            "student": self.student,
            "student_options": dict(self.student_options),
            "steps": self.steps,
            "lr": self.lr,
            "seed": self.seed,
        }


@dataclass
class DemoResult:
    """What the demo measured and where it wrote it."""

    out: Path
    stl_accuracy: float
    aft_accuracy: float
    beta: float
    sweep: list[dict[str, Any]]
    attribution: list[dict[str, Any]]
    attribution_plot: str | None
    student_dir: Path
    student_params: int
    example: dict[str, Any]
    teachers: list[str]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        data["student_dir"] = str(self.student_dir)
        return data


def _clear_previous(out: Path) -> None:
    """Remove an earlier demo's outputs; refuse a folder that holds anything else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserInputError(f"--out {out} is a file; choose a folder")
    entries = [p for p in out.iterdir() if p.name != ".lock"]
    if entries and not (out / MARKER).is_file():
        raise UserInputError(
            f"--out {out} is not empty and holds no earlier demo ({MARKER} is missing); "
            "choose an empty or new folder"
        )
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _example_image(plan: DemoPlan, out: Path) -> tuple[Path, str]:
    """Save the first test image as a PNG; return its path and its true class name."""
    from fusion_aft.data import load

    dataset = load(plan.dataset, **plan.dataset_options)
    test = dataset.split("test")
    record = test[0]
    path = out / "example.png"
    record.image.convert("RGB").save(path)
    return path, dataset.classes[record.label]


def run_demo(
    out: str | Path = "runs/demo",
    plan: DemoPlan | None = None,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Extract, train STL and AFT, attribute μ, export and predict; see the module docstring.

    Args:
        out: the demo's folder (an earlier demo there is replaced; anything else is refused).
        plan: task, teachers and student (the default is the emoji task above).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        cache_dir: where the teachers' banks are cached (default: the usual bank cache).
        progress: show progress bars.
        on_stage: called with a short message as each stage starts (the CLI prints them).
    """
    from fusion_aft.report.attribution import attribution
    from fusion_aft.students.export import export_run
    from fusion_aft.students.io import count_parameters, load_student
    from fusion_aft.students.predict import predict
    from fusion_aft.training.run import train

    plan = plan or DemoPlan()
    out = Path(out)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = on_stage or (lambda message: log.info("%s", message))
    common = {**plan.train_kwargs(), "device": device, "progress": progress}
    if cache_dir is not None:
        common["cache_dir"] = str(cache_dir)

    stage(f"1/4 student alone (STL) on {plan.dataset}, {plan.n_labels} labelled rows")
    stl = train(**common, method="none", beta=0.0, out=str(out / "stl"))
    stage(f"2/4 AFT with teachers {', '.join(plan.teachers)} (β tuned over {list(plan.beta_grid)})")
    aft = train(
        **common,
        method="aft",
        teachers=list(plan.teachers),
        beta="auto",
        beta_grid=list(plan.beta_grid),
        out=str(out / "aft"),
    )
    stage("3/4 μ attribution per teacher")
    report = attribution(aft.run_dir, top=3, plot=True)
    stage("4/4 export the student and label one test image with no teacher loaded")
    student_dir = out / "student"
    export_run(aft.run_dir, student_dir, latency_repeats=5)
    student = load_student(student_dir, device="cpu")
    image_path, truth = _example_image(plan, out)
    guess = predict(student, [str(image_path)], top_k=3)[0]
    sweep = (aft.sweep or {}).get("candidates", [])
    result = DemoResult(
        out=out,
        stl_accuracy=stl.test_accuracy,
        aft_accuracy=aft.test_accuracy,
        beta=aft.beta,
        sweep=sweep,
        attribution=[
            {k: t[k] for k in ("teacher", "width", "share", "initial_share", "mean")}
            for t in report["teachers"]
        ],
        attribution_plot=report.get("plot"),
        student_dir=student_dir,
        student_params=count_parameters(student),
        example={"image": str(image_path), "true_label": truth, **guess},
        teachers=list(plan.teachers),
    )
    atomic_write_json(out / MARKER, result.to_dict())
    return result
