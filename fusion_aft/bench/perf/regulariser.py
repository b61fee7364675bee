"""Section 2, ``regulariser``: AFT's regulariser ÷ a straightforward implementation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fusion_aft.bench.perf.sizes import (
    Sizes,
)
from fusion_aft.bench.perf.timing import interleaved, med, ms


def regulariser_agreement(batch: int, student_dim: int, teacher_dim: int, seed: int = 0) -> dict[str, float]:
    """Largest |difference| of loss and gradients (student features, μ logits) in float64."""
    import torch

    import fusion_aft.objectives as objectives
    from fusion_aft.objectives.reference import ReferenceAFT

    gen = torch.Generator().manual_seed(seed)
    phi = torch.randn(batch, student_dim, generator=gen, dtype=torch.float64)
    psi = torch.randn(batch, teacher_dim, generator=gen, dtype=torch.float64)
    s = 0.5 * torch.randn(teacher_dim, generator=gen, dtype=torch.float64)
    ours = objectives.create("aft", student_dim, {"t": teacher_dim}).double()
    ref = ReferenceAFT(teacher_dim).double()
    with torch.no_grad():
        ours.weights.s.copy_(s)
        ref.s.copy_(s)
    out = {}
    grads = {}
    for name, module in (("ours", ours), ("ref", ref)):
        x = phi.clone().requires_grad_(True)
        loss, _ = module(x, psi)
        loss.backward()
        mu_grad = module.weights.s.grad if name == "ours" else module.s.grad
        grads[name] = (loss.detach(), x.grad, mu_grad)
    out["loss"] = float((grads["ours"][0] - grads["ref"][0]).abs())
    out["grad_student"] = float((grads["ours"][1] - grads["ref"][1]).abs().max())
    out["grad_mu"] = float((grads["ours"][2] - grads["ref"][2]).abs().max())
    return out


def run_regulariser(sizes: Sizes, tick: Callable[[str], None]) -> dict[str, Any]:
    import torch

    import fusion_aft.objectives as objectives
    from fusion_aft.objectives.reference import ReferenceAFT

    b, dphi = sizes.reg_batch, sizes.reg_student_dim
    cases = []
    for dpsi in sizes.reg_teacher_dims:
        tick(f"regulariser: dψ={dpsi}")
        gen = torch.Generator().manual_seed(dpsi)
        phi = torch.randn(b, dphi, generator=gen, requires_grad=True)
        psi = torch.randn(b, dpsi, generator=gen)
        ours = objectives.create("aft", dphi, {"teacher": dpsi})
        ref = ReferenceAFT(dpsi)

        def call(module: Any, phi=phi, psi=psi) -> None:
            loss, _ = module(phi, psi)
            loss.backward()

        times = interleaved(
            {"reference": lambda r=ref: call(r), "ours": lambda o=ours: call(o)},
            sizes.reps,
            inner=sizes.reg_inner,
            warmup=2,
        )
        ratio = med(times["ours"]) / med(times["reference"])
        agreement = regulariser_agreement(b, dphi, dpsi)
        cases.append(
            {
                "batch": b,
                "student_dim": dphi,
                "teacher_dim": dpsi,
                "reference_ms": ms(med(times["reference"])),
                "ours_ms": ms(med(times["ours"])),
                "ratio": round(ratio, 6),
                "speedup": round(1.0 / ratio, 3),
                "max_abs_diff_float64": agreement,
                "target": "<= 1.0",
                "pass": bool(ratio <= 1.0),
            }
        )
    return {
        "what": "forward + backward of the AFT regulariser (objectives.create('aft')) / the straightforward "
        "implementation (fusion_aft.objectives.reference: separate centring and normalising, two "
        "B×B kernels, RMSE, .item() every step)",
        "cases": cases,
        "pass": all(c["pass"] for c in cases),
    }
