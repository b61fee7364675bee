"""The interface every transfer objective implements.

An objective is an ``nn.Module`` built from the student's feature width and the teachers' named
widths. Called on ``(student_features [B, dφ], teacher_features [B, dψ])`` it returns
``(loss, metrics)`` where ``loss`` is the regulariser R (the trainer adds ``β · R`` to the
cross-entropy) and ``metrics`` maps names to detached scalar tensors (no host sync).
Its own parameters form a separate optimiser group with their own default learning rate.

Subclasses implement :meth:`Objective.compute`; :meth:`Objective.forward` first checks the
inputs (shapes, widths, batch size), detaches the teacher features, casts both to a float
dtype of at least 32 bits and switches autocast off, so kernels are never computed in half
precision. NaN/Inf inputs are caught without scanning them every step: every built-in loss
propagates a non-finite input into a non-finite value, so only the scalar loss is checked and
the inputs are inspected only when it is not finite (to name the culprit). On accelerators the
check is ``torch._assert_async`` on the device (no host synchronisation).
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fusion_aft.errors import UserInputError

Metrics = dict[str, torch.Tensor]


class Objective(nn.Module):
    """Base class: stores widths, checks inputs, declares the optimiser group."""

    #: the registered name (set by the registry decorator; used by :meth:`config`)
    name: str = "objective"
    #: default learning rate of this objective's own parameters; ``None`` = the student's lr
    param_lr: float | None = None
    #: whether weight decay applies to this objective's own parameters; False for feature weights
    #: μ, which decay would pull toward one fixed value instead of letting the task choose them
    decays: bool = True
    #: True when the loss compares examples within the batch (needs B >= 2)
    needs_pairs: bool = False
    #: True when the objective uses teacher features at all (``none`` does not)
    uses_teachers: bool = True
    #: check for NaN/Inf inputs (on CUDA without a host synchronisation)
    check_finite: bool = True
    #: ``"loss"``: check the scalar loss and diagnose the inputs only if it is not finite (valid
    #: when a non-finite input always makes the loss non-finite); ``"inputs"``: scan the inputs
    finite_check: str = "loss"

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int]) -> None:
        super().__init__()
        self.student_dim = _positive_int(student_dim, "student_dim")
        if not isinstance(teacher_dims, Mapping):
            raise UserInputError(
                f"teacher_dims must be an ordered mapping teacher name -> width, got "
                f"{type(teacher_dims).__name__}; pass e.g. {{'all-minilm-l6-v2': 384}}"
            )
        self.teacher_dims: OrderedDict[str, int] = OrderedDict(
            (str(k), _positive_int(v, f"teacher_dims['{k}']")) for k, v in teacher_dims.items()
        )
        if self.uses_teachers and not self.teacher_dims:
            raise UserInputError(
                f"objective '{self.name}' transfers from teachers but teacher_dims is empty; "
                "give at least one teacher (or use the 'none' objective)"
            )
        self.teacher_dim = sum(self.teacher_dims.values())
        self._options: dict[str, Any] = {}

    # -- configuration ------------------------------------------------------------------------
    def _set_options(self, **options: Any) -> None:
        """Record the constructor options so :meth:`config` can rebuild this objective."""
        self._options.update(options)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this objective with ``objectives.from_config``.

        Learned state (μ, heads, fitted autoencoders) is in :meth:`state_dict`, not here.
        """
        return {
            "name": self.name,
            "student_dim": self.student_dim,
            "teacher_dims": dict(self.teacher_dims),
            "options": dict(self._options),
        }

    def teacher_slices(self) -> OrderedDict[str, slice]:
        """Columns of the concatenated teacher features that belong to each teacher."""
        out: OrderedDict[str, slice] = OrderedDict()
        start = 0
        for name, width in self.teacher_dims.items():
            out[name] = slice(start, start + width)
            start += width
        return out

    def param_groups(self, student_lr: float) -> list[dict]:
        """Optimiser groups for this objective's parameters (empty if it has none).

        ``own_lr`` marks a group with a learning rate of its own (the trainer's ``objective_lr``
        replaces it); ``weight_decay`` 0 keeps a group out of weight decay.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        lr = self.param_lr if self.param_lr is not None else student_lr
        group = {"params": params, "lr": lr, "name": "objective", "own_lr": self.param_lr is not None}
        if not self.decays:
            group["weight_decay"] = 0.0
        return [group]

    #: True when :meth:`fit` must run on the training bank before the first step
    needs_fit: bool = False

    def fit(
        self,
        teacher_features: torch.Tensor,
        labels: torch.Tensor,
        student_features: torch.Tensor | None = None,
    ) -> None:
        """Fit data-dependent parts before training (FT's autoencoders, B-Tuning's LogME).

        Args:
            teacher_features: ``[N, dψ]`` training-bank rows (labelled and unlabelled).
            labels: ``[N]`` integer labels, ``-1`` for unlabelled rows.
            student_features: ``[N, dφ]`` features of the student at initialisation (B-Tuning).
        """
        return None

    # -- the call -----------------------------------------------------------------------------
    def forward(
        self, student_features: torch.Tensor, teacher_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """Check the inputs and return ``(loss, metrics)`` from :meth:`compute`."""
        student, teacher = self.prepare_inputs(student_features, teacher_features)
        with _autocast_off(student.device.type):
            loss, metrics = self.compute(student, teacher)
        if self.check_finite and self.finite_check == "loss":
            self._check_loss(loss, student, teacher)
        return loss, metrics

    def _check_loss(self, loss: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor | None) -> None:
        where = f"objective '{self.name}'"
        if loss.device.type != "cpu":
            message = (f"{where}: the loss is not finite: the student or teacher features contain NaN or "
                       "Inf values (or overflow float32)")
            torch._assert_async(torch.isfinite(loss), message)
            return
        if bool(torch.isfinite(loss)):
            return
        check_finite(student, "student features", where, "the student diverged: lower the learning rate or β")
        if teacher is not None:
            check_finite(teacher, "teacher features", where,
                         "re-extract the bank (fp16 overflow?) or drop the bad rows")
        raise UserInputError(f"{where}: the loss is not finite although the features are; their values are "
                             "too large for the computation: rescale the features")

    def compute(
        self, student: torch.Tensor, teacher: torch.Tensor | None
    ) -> tuple[torch.Tensor, Metrics]:
        """The regulariser on checked inputs (student ``[B, dφ]``, detached teacher ``[B, dψ]``)."""
        raise NotImplementedError

    def compute_dtype(self, student: torch.Tensor) -> torch.dtype:
        """At least float32 (float64 inputs stay float64)."""
        return torch.promote_types(student.dtype, torch.float32) if student.is_floating_point() else (
            torch.get_default_dtype()
        )

    def prepare_inputs(
        self, student_features: torch.Tensor, teacher_features: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate shapes and values; detach and cast the teacher side. Raises UserInputError."""
        where = f"objective '{self.name}'"
        student = _as_matrix(student_features, "student features", where)
        _check_width(student, self.student_dim, "student features", "student_dim", where)
        dtype = self.compute_dtype(student)
        if student.dtype != dtype:
            student = student.to(dtype)
        batch = student.shape[0]
        if self.needs_pairs and batch < 2:
            raise UserInputError(
                f"{where} compares examples within a batch and needs at least 2 rows, got {batch}; "
                "use a batch size >= 2 (and drop a last batch of one row)"
            )
        teacher = None
        if self.uses_teachers:
            if teacher_features is None:
                raise UserInputError(f"{where} needs teacher features; pass the bank rows of this batch")
            teacher = _as_matrix(teacher_features, "teacher features", where).detach()
            detail = ", ".join(f"{k}: {v}" for k, v in self.teacher_dims.items())
            _check_width(teacher, self.teacher_dim, "teacher features", f"the sum of teacher_dims ({detail})",
                         where)
            if teacher.shape[0] != batch:
                raise UserInputError(
                    f"{where}: student features have {batch} rows but teacher features have "
                    f"{teacher.shape[0]}; give the bank rows of the same examples, in the same order"
                )
            if teacher.device != student.device or teacher.dtype != dtype:
                teacher = teacher.to(device=student.device, dtype=dtype)
        if self.check_finite and self.finite_check == "inputs":
            check_finite(student, "student features", where,
                         "the student diverged: lower the learning rate or β")
            if teacher is not None:
                check_finite(teacher, "teacher features", where,
                             "re-extract the bank (fp16 overflow?) or drop the bad rows")
        return student, teacher

    # -- buffers whose size is known only after fit() ------------------------------------------
    #: names of buffers that take the shape of the loaded state (sized by ``fit``)
    _resizable: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):  # noqa: D401 - torch hook
        for name in self._resizable:
            key = prefix + name
            current = self._buffers.get(name)
            if key in state_dict and current is not None and state_dict[key].shape != current.shape:
                self._buffers[name] = torch.empty_like(current, device=current.device).resize_(
                    state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


# -- input checks --------------------------------------------------------------------------------
def feature_block(features: Any, sl: slice) -> torch.Tensor:
    """Columns ``sl`` of ``features``: a tensor/array, or a lazy view with ``block(slice)`` (the
    trainer's :class:`~fusion_aft.bank.joint.BankRows`, which reads one teacher from disk)."""
    block = getattr(features, "block", None)
    if block is not None:
        return block(sl)
    return torch.as_tensor(features)[:, sl]


def feature_shape(features: Any) -> tuple[int, ...]:
    """The shape of a tensor, an array or a lazy view (without reading a lazy view)."""
    shape = getattr(features, "shape", None)
    return tuple(shape) if shape is not None else tuple(torch.as_tensor(features).shape)


def _positive_int(value: Any, what: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{what} must be a positive integer, got {value!r}") from None
    if out != value or out < 1:
        raise UserInputError(f"{what} must be a positive integer, got {value!r}")
    return out


def _as_matrix(x: Any, what: str, where: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise UserInputError(f"{where}: {what} must be a torch.Tensor [batch, width], got {type(x).__name__}")
    if x.ndim != 2:
        raise UserInputError(
            f"{where}: {what} must be a 2-D tensor [batch, width], got shape {tuple(x.shape)}; "
            "flatten or pool the features first"
        )
    if not (x.is_floating_point() or x.is_complex()):
        x = x.float()
    return x


def _check_width(x: torch.Tensor, expected: int, what: str, source: str, where: str) -> None:
    if x.shape[1] != expected:
        raise UserInputError(
            f"{where}: {what} have width {x.shape[1]} but {expected} was expected ({source}); "
            "build the objective with the widths of the features you pass"
        )


def check_finite(x: torch.Tensor, what: str, where: str, hint: str) -> None:
    """Raise ``UserInputError`` on NaN/Inf; on accelerators assert on the device (no sync).

    On CPU the check is a plain comparison. On CUDA a host synchronisation every step would
    stall the pipeline, so ``torch._assert_async`` is used: a failure surfaces at a later kernel
    launch as a device-side assertion carrying this message.
    """
    message = f"{where}: {what} contain NaN or Inf values; {hint}"
    if x.device.type == "cpu":
        if not bool(torch.isfinite(x).all()):
            raise UserInputError(message)
    else:
        torch._assert_async(torch.isfinite(x).all(), message)


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except (TypeError, RuntimeError):  # device types without autocast support
        enabled = False
    return torch.autocast(device_type=device_type, enabled=False) if enabled else contextlib.nullcontext()


def normalised_entropy(p: torch.Tensor) -> float:
    """Entropy of the distribution ``p / p.sum()`` divided by ``log(len(p))`` (1 for one element)."""
    if p.numel() <= 1:
        return 1.0
    total = p.sum()
    if float(total) <= 0:
        return 0.0
    q = p / total
    h = -(q * torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))).sum()
    return float(h) / math.log(p.numel())
