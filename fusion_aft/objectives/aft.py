"""Adaptive Feature Transfer (Qiu et al., ICML 2024, arXiv 2406.07337, §3) and its kernel ablations."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Metrics, Objective
from fusion_aft.objectives.kernels import (
    KERNELS,
    centre,
    centred_gram,
    kernel_distance,
    kernel_from_gram,
    linear_kernel_distance,
    product_gram,
)
from fusion_aft.objectives.mu import FeatureWeights
from fusion_aft.objectives.registry import register_objective

COMPOSE = ("concat", "product")


@register_objective("aft")
class AFT(Objective):
    r"""Adaptive Feature Transfer: match the student's kernel to a learned weighting of the teachers'.

    Qiu et al., "Transferring Knowledge from Large Foundation Models to Small Downstream Models",
    ICML 2024, §3 (the method). For a batch of ``B`` examples with student features ``Φ`` and
    concatenated teacher features ``Ψ``:

    1. ``Ψ̃ = Ψ diag(μ)``, ``μ = sigmoid(s)``, ``s`` zeros-initialised and learned;
    2. centre every column over the batch (``Φ`` and ``Ψ̃`` separately);
    3. normalise every row: ``row / (‖row‖ + 1e-8)``;
    4. ``K = Φ̂Φ̂ᵀ``, ``Kt = Ψ̂Ψ̂ᵀ`` (or ``exp(−‖a_i − a_j‖²)`` with ``kernel="rbf"``);
    5. ``R = d_k = sqrt(mean_{ij}(K − Kt)²_{ij} + 1e-8)``.

    The trainer minimises ``CE + β · R`` over the student *and* ``s`` jointly; ``s`` has its own
    optimiser group (lr ``mu_lr``). Only relative weights matter (a uniform μ equals no
    weighting); the teacher features carry no gradient. Extra cost per step: ``O(B²(dφ + dψ))``.

    Args:
        student_dim: width ``dφ`` of the student's penultimate features.
        teacher_dims: ordered mapping teacher name → width (``dψ`` is the sum).
        kernel: ``"linear"`` (the paper) or ``"rbf"``.
        mu: ``"diag"`` (the paper), ``"dense"`` (a full ``S``, teacher feature ``ΨS``; μ reported
            as the row norms of ``S``) or ``"fixed"`` (μ = 0.5, not trained).
        compose: ``"concat"`` (the paper's default) or ``"product"``: the teacher feature is the
            flattened outer product of the μ-weighted per-teacher blocks (the paper's SNLI-VE
            image ⊗ text variant); computed through Hadamard products of Grams, never built.
        mu_lr: learning rate of ``s`` (or ``S``); the reference code uses 1e-2.
        train_mu: learn μ (default). ``False`` keeps μ at its current (e.g. loaded) value.
        fused: use the fused linear-kernel path (same numbers, less work); ``False`` uses the
            generic autograd path.

    Inputs:
        +---------------------------+-------------------------+------------------------------+
        | student_features          | teacher_features        | returns                      |
        +===========================+=========================+==============================+
        | float ``[B, dφ]``, B >= 2 | float ``[B, dψ]`` (bank | ``(d_k, {"dk", "mu_mean",    |
        | (gradients flow)          | rows, detached)         | "mu_min", "mu_max"})``       |
        +---------------------------+-------------------------+------------------------------+

    Example::

        import torch, fusion_aft
        obj = fusion_aft.objectives.create("aft", 8, {"a": 6, "b": 4})
        phi = torch.randn(32, 8, requires_grad=True)
        loss, metrics = obj(phi, torch.randn(32, 10))
        loss.backward()                   # gradients reach phi and obj.weights.s
        obj.mu_by_teacher()["a"]["share"]  # 0.6 before training (6 of 10 features)
    """

    needs_pairs = True
    param_lr = 1e-2
    decays = False  # the only parameters are μ's

    def __init__(
        self,
        student_dim: int,
        teacher_dims: Mapping[str, int],
        *,
        kernel: str = "linear",
        mu: str = "diag",
        compose: str = "concat",
        mu_lr: float = 1e-2,
        train_mu: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__(student_dim, teacher_dims)
        if kernel not in KERNELS:
            raise UserInputError(f"objective '{self.name}': unknown kernel {kernel!r}; "
                                 f"choose one of: {', '.join(KERNELS)}")
        if compose not in COMPOSE:
            raise UserInputError(f"objective '{self.name}': unknown compose {compose!r}; "
                                 f"choose one of: {', '.join(COMPOSE)}")
        if not mu_lr > 0:
            raise UserInputError(f"objective '{self.name}': mu_lr must be > 0, got {mu_lr!r}")
        self.kernel = kernel
        self.compose = compose
        self.fused = bool(fused)
        self.param_lr = float(mu_lr)
        self.weights = FeatureWeights(self.teacher_dims, kind=mu, trainable=train_mu)
        self._set_options(kernel=kernel, mu=mu, compose=compose, mu_lr=float(mu_lr),
                          train_mu=bool(train_mu), fused=bool(fused))

    # -- μ ----------------------------------------------------------------------------------------
    @property
    def mu(self) -> torch.Tensor:
        """Per-feature weights ``[dψ]`` (detached; for ``mu="dense"`` the row norms of ``S``)."""
        return self.weights.mu

    def mu_by_teacher(self) -> OrderedDict[str, dict[str, float]]:
        """Per teacher: ``mean`` μ, ``share`` of the total μ mass (sums to 1), ``entropy`` of μ
        within the teacher's slice (normalised to [0, 1]; 1 = all its features weighted alike)
        and ``width``."""
        return self.weights.by_teacher()

    # -- the regulariser ----------------------------------------------------------------------------
    def teacher_gram(self, psi: torch.Tensor) -> torch.Tensor:
        """The centred Gram of the (weighted, composed) teacher feature."""
        weighted = self.weights.weigh(psi)
        if self.compose == "concat":
            return centred_gram(weighted)
        blocks = [weighted[:, sl] for sl in self.teacher_slices().values()]
        return product_gram(blocks)

    def kernels(self, phi: torch.Tensor, psi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The student and teacher kernel matrices ``K`` and ``Kt`` (``[B, B]`` each)."""
        return kernel_from_gram(centred_gram(phi), self.kernel), kernel_from_gram(
            self.teacher_gram(psi), self.kernel)

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        use_fused = (self.fused and self.kernel == "linear" and self.compose == "concat"
                     and self.weights.kind != "dense")
        if use_fused:
            w = self.weights.weights(student.dtype)
            if w is not None and not w.requires_grad:
                w = w.detach()
            dk = linear_kernel_distance(student, centre(teacher), w)
        else:
            k, kt = self.kernels(student, teacher)
            dk = kernel_distance(k, kt)
        metrics = {"dk": dk.detach(), **self.weights.stats()}
        return dk, metrics


@register_objective("aft_rbf")
class AFTRBF(AFT):
    """AFT with the RBF kernel ``exp(−‖a_i − a_j‖²)`` on the centred, row-normalised features.

    Ablation of Qiu et al. 2024 (reference code, kernel ``rbf``); otherwise identical to
    :class:`AFT`. The RBF kernel of two normalised rows is ``exp(−(2 − 2 cos))`` up to ε, so it
    emphasises near neighbours more than the linear kernel does.

    Args:
        student_dim, teacher_dims: as for :class:`AFT`.
        kernel: defaults to ``"rbf"``; every other :class:`AFT` option is accepted too.

    Inputs:
        +---------------------------+------------------------------+-------------------------+
        | student_features          | teacher_features             | returns                 |
        +===========================+==============================+=========================+
        | float ``[B, dφ]``, B >= 2 | float ``[B, dψ]`` (detached) | ``(d_k, {"dk", ...})``  |
        +---------------------------+------------------------------+-------------------------+

    Example::

        obj = fusion_aft.objectives.create("aft_rbf", 8, {"a": 10})
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, kernel: str = "rbf",
                 **options) -> None:
        super().__init__(student_dim, teacher_dims, kernel=kernel, **options)


@register_objective("aft_dense")
class AFTDense(AFT):
    """AFT with a dense learned map: teacher feature ``Ψ S``, ``S ∈ R^{dψ×dψ}`` (init N(0,1)/√dψ).

    Ablation of Qiu et al. 2024 (reference code, dense "scales"): no sigmoid, so ``S`` can mix
    and rotate teacher features, which makes the regulariser weaker than the diagonal μ.
    ``.mu`` reports the L2 norm of each row of ``S``. Otherwise identical to :class:`AFT`.
    ``S`` has ``dψ²`` entries and costs ``O(B dψ²)`` per step: mind wide teacher banks.

    Args:
        student_dim, teacher_dims: as for :class:`AFT`.
        mu: defaults to ``"dense"``; every other :class:`AFT` option is accepted too (with
            ``compose="product"`` the columns of ``Ψ S`` are split by the teachers' widths).

    Inputs:
        +---------------------------+------------------------------+-------------------------+
        | student_features          | teacher_features             | returns                 |
        +===========================+==============================+=========================+
        | float ``[B, dφ]``, B >= 2 | float ``[B, dψ]`` (detached) | ``(d_k, {"dk", ...})``  |
        +---------------------------+------------------------------+-------------------------+

    Example::

        obj = fusion_aft.objectives.create("aft_dense", 8, {"a": 10})
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, mu: str = "dense",
                 **options) -> None:
        super().__init__(student_dim, teacher_dims, mu=mu, **options)
