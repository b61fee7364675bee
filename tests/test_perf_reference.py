"""AFT's fused regulariser equals the straightforward implementation (loss and gradients, float64)."""

from __future__ import annotations

import pytest
import torch

import fusion_aft.objectives as objectives
from fusion_aft.bench.perf import regulariser_agreement
from fusion_aft.objectives.reference import ReferenceAFT

SHAPES = [(2, 3, {"a": 5}), (7, 16, {"a": 12, "b": 4}), (64, 32, {"a": 256}), (128, 384, {"a": 384, "b": 50})]


@pytest.mark.parametrize(("batch", "dphi", "dims"), SHAPES)
@pytest.mark.parametrize(("kernel", "fused"), [("linear", True), ("linear", False), ("rbf", True)])
def test_loss_and_gradients_match_reference(
    batch: int, dphi: int, dims: dict, kernel: str, fused: bool
) -> None:
    gen = torch.Generator().manual_seed(batch * 1000 + dphi)
    dpsi = sum(dims.values())
    phi = torch.randn(batch, dphi, generator=gen, dtype=torch.float64)
    psi = 3.0 * torch.randn(batch, dpsi, generator=gen, dtype=torch.float64) + 1.0
    s = torch.randn(dpsi, generator=gen, dtype=torch.float64)
    ours = objectives.create("aft", dphi, dims, kernel=kernel, fused=fused).double()
    ref = ReferenceAFT(dpsi, kernel=kernel).double()
    with torch.no_grad():
        ours.weights.s.copy_(s)
        ref.s.copy_(s)
    x1 = phi.clone().requires_grad_(True)
    x2 = phi.clone().requires_grad_(True)
    l1, metrics = ours(x1, psi)
    l2, ref_metrics = ref(x2, psi)
    l1.backward()
    l2.backward()
    assert l1.dtype == torch.float64
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-14)
    assert float(metrics["dk"]) == pytest.approx(ref_metrics["dk"], rel=1e-12)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(ours.weights.s.grad, ref.s.grad, rtol=1e-9, atol=1e-14)


def test_benchmark_agreement_helper_reports_tiny_differences() -> None:
    diff = regulariser_agreement(128, 384, 1024)
    assert set(diff) == {"loss", "grad_student", "grad_mu"}
    assert max(diff.values()) < 1e-12
