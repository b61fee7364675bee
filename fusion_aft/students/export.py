"""Export a trained student from a run folder: copy it alone, measure it, write a model card.

A run folder (written by ``fusion_aft.train``) holds ``config.json``, ``metrics.jsonl``,
``student/`` (a :func:`~fusion_aft.students.save_student` folder), ``objective.*``,
``provenance.json`` (teachers and dataset) and ``result.json`` (test accuracy). The export keeps
only the student (weights, config, tokenizer) plus a ``README.md`` model card: it needs no teacher
and no fusion-aft run to be used.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from fusion_aft.errors import UserInputError
from fusion_aft.students.io import CONFIG_FILE, count_parameters, load_student, read_student_info
from fusion_aft.students.measure import folder_size, student_latency_ms, teacher_latency_ms

log = logging.getLogger(__name__)

RUN_FILES = ("provenance.json", "result.json")
CARD_FILE = "README.md"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"cannot read '{path}' ({exc}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise UserInputError(f"'{path}' does not hold a JSON object; the run folder is damaged")
    return data


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The facts of a finished run folder needed for export; one-line errors for bad folders."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserInputError(
            f"run folder '{run_dir}' does not exist; pass the --out folder of `fusion-aft train`"
        )
    missing = [name for name in (*RUN_FILES, "student") if not (run_dir / name).exists()]
    if missing:
        raise UserInputError(
            f"'{run_dir}' is not a finished training run (missing: {', '.join(missing)}); "
            "pass the folder written by `fusion-aft train` after it completes"
        )
    read_student_info(run_dir / "student")
    config_path = run_dir / "config.json"
    return {
        "run_dir": run_dir,
        "provenance": _read_json(run_dir / "provenance.json"),
        "result": _read_json(run_dir / "result.json"),
        "config": _read_json(config_path) if config_path.is_file() else {},
    }


def _prepare_out(out: Path, run_dir: Path) -> None:
    if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
        raise UserInputError(f"export folder '{out}' is inside the run folder; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"export target '{out}' is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / CONFIG_FILE).is_file():
            raise UserInputError(
                f"export folder '{out}' is not empty and holds no exported student; choose an empty folder"
            )
        shutil.rmtree(out)  # a previous export of a student: replaced as a whole
    out.mkdir(parents=True, exist_ok=True)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    teacher_latency: bool = False,
    latency_repeats: int = 20,
) -> dict[str, Any]:
    """Copy the student of ``run_dir`` to ``out`` with a model card; return the cost summary.

    Args:
        run_dir: a finished training run folder.
        out: destination folder (created; a previous export there is replaced; any other
            non-empty folder is refused).
        teacher_latency: also time each teacher that is installed here (slow for big ones).
        latency_repeats: timed repetitions (median reported).

    Returns:
        ``{"out", "student": {...}, "teachers": [...], "dataset", "test_accuracy", ...}``.
    """
    run = read_run(run_dir)
    run_dir, out = Path(run_dir), Path(out)
    _prepare_out(out, run_dir)
    shutil.copytree(run_dir / "student", out, dirs_exist_ok=True)

    student = load_student(out, device="cpu")
    info = read_student_info(out)
    summary: dict[str, Any] = {
        "out": str(out),
        "run_dir": str(run_dir),
        "dataset": run["provenance"].get("dataset", {}),
        "test_accuracy": run["result"].get("test_accuracy"),
        "method": run["config"].get("method") or student.meta.get("method"),
        "beta": run["result"].get("beta", student.meta.get("beta")),
        "student": {
            "name": info["name"],
            "config": info["config"],
            "params": count_parameters(student),
            "size_bytes": folder_size(out, exclude=(CARD_FILE,)),
            "latency_ms": student_latency_ms(student, repeats=latency_repeats),
            "feature_dim": student.feature_dim,
            "num_classes": student.num_classes,
            "modality": student.modality,
        },
        "torch_threads": torch.get_num_threads(),
        "teachers": [_teacher_row(t, teacher_latency) for t in run["provenance"].get("teachers", [])],
    }
    (out / CARD_FILE).write_text(model_card(summary, student.class_names), encoding="utf8")
    log.info("exported the student of %s to %s", run_dir, out)
    return summary


def _teacher_row(entry: dict[str, Any], timed: bool) -> dict[str, Any]:
    row = {
        k: entry.get(k)
        for k in ("name", "ref", "kind", "model_id", "revision", "licence", "width", "params", "fingerprint")
    }
    row["latency_ms"] = None
    row["latency_note"] = "not measured (pass --teacher-latency)" if not timed else None
    if timed:
        row.update(_time_teacher(entry.get("ref") or entry.get("name")))
    return row


def _time_teacher(ref: str | None) -> dict[str, Any]:
    import fusion_aft.teachers as teachers

    if not ref:
        return {"latency_note": "no teacher reference in provenance"}
    try:
        ok, why = teachers.available(ref)
        if not ok:
            return {"latency_note": f"not installed here ({why})"}
        teacher = teachers.load(ref, device="cpu")
        return {"latency_ms": teacher_latency_ms(teacher, teachers.get(ref).inputs), "latency_note": None}
    except Exception as exc:  # a missing or broken teacher must not break the export
        return {"latency_note": f"not available here ({type(exc).__name__}: {str(exc)[:120]})"}


def _fmt_int(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, (int, float)) else "unknown"


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def model_card(summary: dict[str, Any], classes: list[str] | None) -> str:
    """The ``README.md`` of an exported student (Markdown)."""
    s = summary["student"]
    ds = summary.get("dataset") or {}
    acc = summary.get("test_accuracy")
    acc_text = f"{100 * float(acc):.2f}%" if acc is not None else "not recorded"
    teachers = summary.get("teachers") or []
    names = list(classes or ds.get("classes") or [])
    lines = [
        f"# {s['name']} student trained on {ds.get('name', 'an unnamed dataset')} with fusion-aft",
        "",
        f"A small `{s['name']}` model ({_fmt_int(s['params'])} parameters) trained with "
        f"`{summary.get('method') or 'unknown'}` to absorb the features of "
        f"{len(teachers)} frozen teacher model(s) (Adaptive Feature Transfer, Qiu et al., ICML 2024, "
        "arXiv 2406.07337). The teachers are not needed to use it.",
        "",
        "## Results",
        "",
        f"- Test accuracy: **{acc_text}**",
        f"- Regularisation strength β: {summary.get('beta')}",
        "",
        "## Dataset",
        "",
        f"- Name: {ds.get('name', 'unknown')}",
        f"- Fingerprint: `{ds.get('fingerprint', 'unknown')}`",
        f"- Classes ({len(names)}): {', '.join(names)}",
        "",
        "## Teachers",
        "",
    ]
    if teachers:
        lines += [
            "| teacher | kind | model | width | parameters | licence |",
            "|---|---|---|---|---|---|",
        ]
        for t in teachers:
            lines.append(
                f"| {t.get('name')} | {t.get('kind')} | {t.get('model_id') or ''} | {t.get('width')} | "
                f"{_fmt_int(t.get('params'))} | {t.get('licence') or 'unknown'} |"
            )
        lines += [
            "",
            "The student was trained on features of these models: check their licences (and the "
            "dataset's terms) before you redistribute it.",
        ]
    else:
        lines.append("None (trained on labels only).")
    lines += [
        "",
        "## Cost",
        "",
        "| model | parameters | size on disk | CPU latency per example |",
        "|---|---|---|---|",
        f"| student ({s['name']}) | {_fmt_int(s['params'])} | {_fmt_bytes(s['size_bytes'])} | "
        f"{s['latency_ms']:.2f} ms |",
    ]
    for t in teachers:
        lat = f"{t['latency_ms']:.2f} ms" if t.get("latency_ms") is not None else "not measured"
        lines.append(f"| teacher {t.get('name')} | {_fmt_int(t.get('params'))} | | {lat} |")
    lines += [
        "",
        f"Latency: median over repeated single-example calls on CPU with {summary.get('torch_threads')} "
        "torch thread(s), preprocessing included.",
        "",
        "## Use",
        "",
        "```python",
        "import fusion_aft",
        "",
        'student = fusion_aft.load_student("<this folder>")',
        "probs = student.predict_proba([record, ...])  # records with an "
        f"'{'text' if s['modality'] == 'text' else 'image'}' field",
        "print(student.class_names)",
        "```",
        "",
        "or from the command line:",
        "",
        "```",
        "fusion-aft predict <this folder> " + ('"some text"' if s["modality"] == "text" else "image.png"),
        "```",
        "",
        "Files: `student.safetensors` (weights), `student.json` (architecture and classes)"
        + (", `tokenizer/`" if (Path(summary["out"]) / "tokenizer").is_dir() else "")
        + ".",
        "",
    ]
    return "\n".join(lines)
