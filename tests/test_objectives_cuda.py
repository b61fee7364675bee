"""On a CUDA device: the objectives give the CPU numbers and never synchronise with the host."""

from __future__ import annotations

import pytest
import torch

from fusion_aft.objectives import create

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

NAMES = ["aft", "aft_rbf", "aft_dense", "aft_no_kernel", "kkd", "kd", "rkd", "none"]


@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu_without_host_syncs(name):
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(128, 64, generator=gen)
    psi = torch.randn(128, 96, generator=gen).half()  # fp16 like the bank
    cpu = create(name, 64, {"a": 64, "b": 32})
    gpu = create(name, 64, {"a": 64, "b": 32}).to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    expected, _ = cpu(phi, psi)
    x = phi.cuda().requires_grad_(True)
    t = psi.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, metrics = gpu(x, t)
        if loss.requires_grad:
            loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert all(v.device.type == "cuda" for v in metrics.values())
