"""Factor transfer (Kim, Park, Kwak, NeurIPS 2018): paraphrase the teachers, translate the student."""


from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Metrics, Objective, feature_block, feature_shape
from fusion_aft.objectives.registry import register_objective

log = logging.getLogger(__name__)

#: ε of the L2 normalisation of factors
_NORM_EPS = 1e-8


def validation_split(n: int, fraction: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic ``(train_idx, val_idx)`` of ``n`` rows: a seeded permutation, the first
    ``ceil(fraction · n)`` rows (at least 1, at most ``n − 1``) for validation."""
    if n < 2:
        raise UserInputError(f"factor transfer needs at least 2 rows to hold out a validation split, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    n_val = min(max(1, math.ceil(fraction * n)), n - 1)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


class Paraphraser(nn.Module):
    """The autoencoder of one teacher: encoder ``d→d→d/2→d/2`` (ReLU between layers; the factor
    itself is linear), decoder mirrored ``d/2→d/2→d→d`` (linear reconstruction)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = max(1, dim // 2)
        self.factor_dim = half
        self.encoder = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, half), nn.ReLU(),
                                     nn.Linear(half, half))
        self.decoder = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Linear(half, dim), nn.ReLU(),
                                     nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@dataclass
class FitReport:
    """What :meth:`FactorTransfer.fit` did for one teacher's autoencoder."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_epoch: int = 0
    stopped_early: bool = False


def train_autoencoder(model: Paraphraser, x: torch.Tensor, *, lr: float, batch_size: int, max_epochs: int,
                      patience: int, val_fraction: float, seed: int) -> FitReport:
    """Fit ``model`` to reconstruct ``x`` (MSE) with Adam; stop when the validation loss has not
    improved for ``patience`` epochs; restore the weights of the best validation epoch."""
    device = next(model.parameters()).device
    train_idx, val_idx = validation_split(x.shape[0], val_fraction, seed)
    x_train, x_val = x[train_idx], x[val_idx].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    report = FitReport()
    best = math.inf
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, max_epochs + 1):
        model.train()
        total = x_val.new_zeros(())
        for idx in torch.randperm(x_train.shape[0], generator=gen).split(batch_size):
            batch = x_train[idx.to(x.device)].to(device, non_blocking=True)
            loss = F.mse_loss(model(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        model.eval()
        with torch.no_grad():
            val = float(F.mse_loss(model(x_val), x_val))
        report.train_loss.append(float(total) / x_train.shape[0])
        report.val_loss.append(val)
        report.stopped_epoch = epoch
        if val < best:
            best, report.best_epoch = val, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - report.best_epoch >= patience:
            report.stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    return report


@register_objective("ft")
class FactorTransfer(Objective):
    r"""Factor transfer: ``R = mean_b ‖ t̂_b − ŝ_b ‖₁`` between normalised teacher and student factors.

    Kim, Park, Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
    NeurIPS 2018, §3 (baseline "FT" in the experiments of Qiu et al. 2024, §4). Before
    training, :meth:`fit` trains one *paraphraser* (autoencoder, encoder ``d→d→d/2→d/2``,
    decoder mirrored, ReLU, MSE, Adam lr 3e-4, batch 1024) per teacher on the training bank,
    with early stopping on a deterministic 10% validation split of the rows given. Its
    encoder then gives the teacher factor ``t = [enc_1(ψ_1), …, enc_M(ψ_M)]``
    (``d_ae = Σ ⌊d_m/2⌋``). A *translator* MLP ``dφ→dφ→d_ae→d_ae`` (ReLU, last layer
    zero-initialised) maps the student features to ``s``.
    Each teacher's block of ``t`` and ``s`` is L2-normalised (so every teacher counts alike),
    and ``R`` is the L1 distance summed over dimensions, averaged over the batch. The
    translator learns at the student's lr; the paraphrasers stay frozen.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ordered mapping teacher name → width.
        lr: Adam learning rate of the paraphrasers (3e-4).
        batch_size: paraphraser batch size (1024).
        max_epochs: most paraphraser epochs (100).
        patience: epochs without validation improvement before stopping (5).
        val_fraction: share of the rows held out for validation (0.1).
        seed: seed of the split and the shuffling (0).

    Inputs:
        +------------------------+-------------------------------+----------------------+
        | student_features       | teacher_features              | returns              |
        +========================+===============================+======================+
        | float ``[B, dφ]``      | float ``[B, dψ]`` (detached)  | ``(R, {"l1"})``      |
        +------------------------+-------------------------------+----------------------+

    Example::

        obj = fusion_aft.objectives.create("ft", 8, {"a": 10}, max_epochs=5)
        obj.fit(torch.randn(200, 10), torch.zeros(200, dtype=torch.long))
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    needs_fit = True
    param_lr = None
    #: ReLU networks can map ±Inf to finite values, so the inputs themselves are scanned
    finite_check = "inputs"

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, lr: float = 3e-4,
                 batch_size: int = 1024, max_epochs: int = 100, patience: int = 5, val_fraction: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__(student_dim, teacher_dims)
        if not 0 < val_fraction < 1:
            raise UserInputError(f"objective 'ft': val_fraction must be in (0, 1), got {val_fraction!r}")
        if int(max_epochs) < 1 or int(patience) < 1 or int(batch_size) < 1 or not lr > 0:
            raise UserInputError("objective 'ft': lr, batch_size, max_epochs and patience must be positive")
        self._set_options(lr=float(lr), batch_size=int(batch_size), max_epochs=int(max_epochs),
                          patience=int(patience), val_fraction=float(val_fraction), seed=int(seed))
        self.paraphrasers = nn.ModuleDict({name: Paraphraser(d) for name, d in self.teacher_dims.items()})
        for p in self.paraphrasers.parameters():
            p.requires_grad_(False)
        self.factor_dims = [m.factor_dim for m in self.paraphrasers.values()]
        d_ae = sum(self.factor_dims)
        self.translator = nn.Sequential(nn.Linear(self.student_dim, self.student_dim), nn.ReLU(),
                                        nn.Linear(self.student_dim, d_ae), nn.ReLU(), nn.Linear(d_ae, d_ae))
        nn.init.zeros_(self.translator[-1].weight)
        nn.init.zeros_(self.translator[-1].bias)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.fit_reports: dict[str, FitReport] = {}
        self._is_fitted = False

    def fit(self, teacher_features: torch.Tensor, labels: torch.Tensor | None = None,
            student_features: torch.Tensor | None = None) -> None:
        """Train one paraphraser per teacher on ``teacher_features`` (labels are not used).

        ``teacher_features`` is a ``[N, dψ]`` tensor or a lazy view of the bank (``block(slice)``):
        each teacher's block is read in turn and stays where it is read (the host, for the bank);
        only the mini-batches and the validation rows move to the paraphrasers' device.
        """
        shape = feature_shape(teacher_features)
        if len(shape) != 2 or shape[1] != self.teacher_dim:
            raise UserInputError(f"objective 'ft': fit() expects teacher features [N, {self.teacher_dim}], "
                                 f"got shape {shape}")
        opts = self._options
        dtype = self.translator[0].weight.dtype
        with torch.enable_grad():
            pairs = zip(self.paraphrasers.items(), self.teacher_slices().values(), strict=True)
            for (name, model), sl in pairs:
                x = feature_block(teacher_features, sl).to(dtype=dtype)
                if not bool(torch.isfinite(x).all()):
                    raise UserInputError(
                        f"objective 'ft': fit() got teacher features of '{name}' with NaN or Inf values"
                    )
                model.requires_grad_(True)
                report = train_autoencoder(model, x, lr=opts["lr"], batch_size=opts["batch_size"],
                                           max_epochs=opts["max_epochs"], patience=opts["patience"],
                                           val_fraction=opts["val_fraction"], seed=opts["seed"])
                model.requires_grad_(False)
                self.fit_reports[name] = report
                log.info("ft: paraphraser for %s: best val MSE %.4g at epoch %d (stopped at %d)", name,
                         min(report.val_loss), report.best_epoch, report.stopped_epoch)
        self.fitted.fill_(True)
        self._is_fitted = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # torch hook
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._is_fitted = bool(self.fitted)

    def _normalise_blocks(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.split(self.factor_dims, dim=1)
        return torch.cat([F.normalize(part, dim=1, eps=_NORM_EPS) for part in parts], dim=1)

    def teacher_factor(self, teacher: torch.Tensor) -> torch.Tensor:
        """The normalised teacher factor ``[B, d_ae]`` (no gradient)."""
        with torch.no_grad():
            pairs = zip(self.paraphrasers.values(), self.teacher_slices().values(), strict=True)
            parts = [model.encoder(teacher[:, sl].to(model.encoder[0].weight.dtype)) for model, sl in pairs]
            return self._normalise_blocks(torch.cat(parts, dim=1).to(teacher.dtype))

    def student_factor(self, student: torch.Tensor) -> torch.Tensor:
        """The normalised translated student factor ``[B, d_ae]``."""
        out = self.translator(student.to(self.translator[0].weight.dtype)).to(student.dtype)
        return self._normalise_blocks(out)

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        if not self._is_fitted:
            raise UserInputError("objective 'ft' must be fitted first: call .fit(training teacher features, "
                                 "labels)")
        l1 = (self.teacher_factor(teacher) - self.student_factor(student)).abs().sum(dim=1).mean()
        return l1, {"l1": l1.detach()}
