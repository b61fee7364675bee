"""The AFT regulariser never waits for the device: no ``.item()``/``bool()``/``.cpu()`` per step.

Those calls all reach ``aten._local_scalar_dense`` (or a device-to-host copy). A
``TorchDispatchMode`` records every op the objective runs. The objective is run on the ``meta``
device, which takes the same branch as an accelerator (``device.type != "cpu"``) without needing
one; CPU-only machines can run this test.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fusion_aft.objectives as objectives
from fusion_aft.objectives.reference import ReferenceAFT

SYNCING = ("aten._local_scalar_dense", "aten.item")


class RecordOps(TorchDispatchMode):
    """Records the name of every aten op and every copy whose destination is the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.host_copies = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        self.ops.append(name)
        out = func(*args, **kwargs)
        if "_to_copy" in name or name.startswith("aten.copy_"):
            src = args[1] if name.startswith("aten.copy_") else args[0]
            dst = args[0] if name.startswith("aten.copy_") else out
            if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor) and (
                src.device.type != "cpu" and dst.device.type == "cpu"
            ):
                self.host_copies += 1
        return out

    def syncs(self) -> list[str]:
        return [op for op in self.ops if op.startswith(SYNCING)]


@pytest.mark.parametrize(
    ("name", "options"),
    [("aft", {}), ("aft", {"fused": False}), ("aft", {"mu": "dense"}), ("aft_rbf", {}),
     ("aft", {"compose": "product"})],
)
def test_aft_step_makes_no_host_sync(name: str, options: dict) -> None:
    obj = objectives.create(name, 16, {"a": 6, "b": 4}, **options).to("meta")
    phi = torch.empty(32, 16, device="meta", requires_grad=True)
    psi = torch.empty(32, 10, device="meta")
    with RecordOps() as rec:
        loss, metrics = obj(phi, psi)
        loss.backward()
    assert rec.ops, "the recorder saw no ops"
    assert rec.syncs() == []
    assert rec.host_copies == 0
    assert all(isinstance(v, torch.Tensor) and v.device.type == "meta" for v in metrics.values())
    assert phi.grad is not None


def test_recorder_catches_the_reference_item_call() -> None:
    """The straightforward implementation calls ``.item()`` every step; the recorder sees it."""
    ref = ReferenceAFT(10)
    with RecordOps() as rec:
        loss, metrics = ref(torch.randn(8, 16, requires_grad=True), torch.randn(8, 10))
    assert isinstance(metrics["dk"], float)
    assert rec.syncs() == ["aten._local_scalar_dense.default"]
