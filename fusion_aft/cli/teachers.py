"""``fusion-aft teachers list|show|add|check``: browse, add and verify teacher cards."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json
from fusion_aft.cli.options import DEVICE_HELP

REGISTRY_HELP = "An extra folder of teacher cards (*.toml), besides FUSION_AFT_REGISTRY."


def _use_registry(registry: Path | None) -> None:
    if registry is not None:
        from fusion_aft import teachers

        teachers.use_registry_dir(registry)


def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def list_teachers(
    modality: str | None = typer.Option(None, "--modality", help="image, text or image+text."),
    pattern: str | None = typer.Option(
        None, "--pattern", "-p", help="Shell wildcard on names, e.g. 'dinov2*'."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    registry: Path | None = typer.Option(None, "--registry", help=REGISTRY_HELP),
) -> None:
    """List teachers: name, modality, width, parameters, licence and whether it loads offline now."""
    from fusion_aft import teachers

    _use_registry(registry)
    rows = []
    for name in teachers.list(pattern, modality=modality):
        card = teachers.get(name)
        ok, reason = teachers.available(name)
        rows.append(
            {
                "name": name,
                "modality": card.inputs,
                "width": card.width,
                "parameters": card.parameters,
                "licence": card.licence,
                "kind": card.kind,
                "offline": ok,
                "reason": reason,
            }
        )
    if as_json:
        emit_json(rows)
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"{len(rows)} teachers", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("name", no_wrap=True)
    table.add_column("modality", no_wrap=True)
    table.add_column("width", justify="right", no_wrap=True, min_width=5)
    table.add_column("params", justify="right", no_wrap=True, min_width=6)
    table.add_column("licence", min_width=8, max_width=16, overflow="ellipsis", no_wrap=True)
    table.add_column("offline", no_wrap=True, min_width=7)
    for r in rows:
        table.add_row(
            r["name"],
            r["modality"],
            str(r["width"]),
            _human(r["parameters"]),
            r["licence"],
            "yes" if r["offline"] else "no",
        )
    console.print(table)


def show(
    name: str = typer.Argument(..., help="Teacher name or reference (NAME?key=value)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    registry: Path | None = typer.Option(None, "--registry", help=REGISTRY_HELP),
) -> None:
    """Show one teacher card, its fingerprint and whether its weights are here."""
    from fusion_aft import teachers

    _use_registry(registry)
    card = teachers.get(name)
    ok, reason = teachers.available(name)
    data = {
        **card.content(),
        "fingerprint": card.fingerprint(),
        "source": card.source,
        "offline": ok,
        "availability": reason,
    }
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v not in (None, False)}
        if value in (None, "", (), [], {}):
            continue
        console.print(f"[bold]{key}[/bold]: {value}", highlight=False, soft_wrap=True)


def add(
    card_file: Path = typer.Argument(..., help="The card to add (TOML)."),
    registry: Path | None = typer.Option(
        None,
        "--registry",
        help="Folder to add it to (default: FUSION_AFT_REGISTRY or ~/.cache/fusion-aft/registry).",
    ),
) -> None:
    """Validate a card and add it to the user's registry; a taken name is refused."""
    from fusion_aft import paths, teachers

    if registry is not None and registry.is_dir():
        _use_registry(registry)
    card = teachers.add_card(card_file, registry_dir=registry)
    folder = registry if registry is not None else paths.user_registry_dir()
    console.print(
        f"added teacher '{card.name}' ({card.inputs}, width {card.width}) to {folder}", highlight=False
    )


def _examples(inputs: str) -> list:
    import numpy as np
    from PIL import Image

    grid = np.indices((96, 128)).sum(0)
    images = [
        Image.fromarray(np.stack([grid % 256, (2 * grid) % 256, 255 - grid % 256], -1).astype(np.uint8)),
        Image.fromarray(((grid // 16) % 2 * 255).astype(np.uint8)).convert("RGB"),
    ]
    texts = ["A small dog runs across the green park.", "Stock markets fell sharply on Monday."]
    if inputs == "image":
        return images
    if inputs == "text":
        return texts
    return [{"image": i, "text": t} for i, t in zip(images, texts, strict=True)]


def check(
    name: str = typer.Argument(..., help="Teacher name or reference (NAME?key=value)."),
    device: str = typer.Option("auto", "--device", help="Where the teacher runs: " + DEVICE_HELP + "."),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow code from the model repository."
    ),
    registry: Path | None = typer.Option(None, "--registry", help=REGISTRY_HELP),
) -> None:
    """Load a teacher, encode two examples and confirm the card's declared width."""
    import torch

    from fusion_aft import teachers
    from fusion_aft.errors import UserInputError
    from fusion_aft.training.run import resolve_device

    _use_registry(registry)
    teacher = teachers.load(name, device=str(resolve_device(device)), trust_remote_code=trust_remote_code)
    card = teacher.spec
    out = teacher.encode(_examples(card.inputs))
    if out.ndim != 2 or out.shape[0] != 2:
        raise UserInputError(f"teacher '{card.name}': expected 2 feature rows, got shape {tuple(out.shape)}")
    if out.shape[1] != card.width:
        raise UserInputError(
            f"teacher '{card.name}': card width {card.width} but the model outputs width {out.shape[1]}; "
            f"fix 'width' in {card.source or 'its card'}"
        )
    if out.dtype != torch.float32 or not torch.isfinite(out).all():
        raise UserInputError(f"teacher '{card.name}': features are not finite float32 ({out.dtype})")
    console.print(
        f"ok: teacher '{card.ref}' gives {out.shape[1]} features (card width {card.width}); "
        f"weights {teacher.weights_digest()[:12]}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``teachers`` command group to the root app."""
    group = typer.Typer(help="Browse, add and check teacher cards.", no_args_is_help=True)
    group.command("list")(list_teachers)
    group.command("show")(show)
    group.command("add")(add)
    group.command("check")(check)
    from fusion_aft.cli.rank import rank

    group.command("rank")(rank)
    app.add_typer(group, name="teachers")
