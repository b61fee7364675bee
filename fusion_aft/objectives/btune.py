"""B-Tuning (You et al., JMLR 2022): tune the student towards an evidence-weighted mix of teachers."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping

import torch

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Metrics, Objective, feature_block, feature_shape
from fusion_aft.objectives.logme import logme
from fusion_aft.objectives.registry import register_objective

log = logging.getLogger(__name__)


@register_objective("btune")
class BTuning(Objective):
    r"""B-Tuning: ``R = mean_{b,c}(Φ m_Φᵀ − Σ_k w_k ψ_k m_kᵀ)²_{bc}``.

    You, Liu, Wang, Jordan, Long, "Ranking and Tuning Pre-trained Models: A New Paradigm for
    Exploiting Model Hubs", JMLR 2022 (baseline "B-Tuning" in the experiments of Qiu et al.
    2024, §4). Before training, :meth:`fit` runs :func:`~fusion_aft.objectives.logme.logme` on
    the labelled rows (label ≥ 0) of each teacher's block ``ψ_k`` and of the student's initial
    features: LogME gives teacher ``k`` an evidence score ``e_k`` and posterior-mean weights
    ``m_k ∈ R^{C×d_k}`` (and the student ``m_Φ ∈ R^{C×dφ}``). The teachers are weighted by
    ``w = softmax(e / temperature)``; the regulariser is the mean squared error over the batch and the
    ``C`` outputs between the student's and the weighted teachers' Bayesian predictions. No
    learned parameters; ``m`` and ``w`` are buffers saved in ``state_dict()``.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ordered mapping teacher name → width.
        temperature: softmax temperature of the evidence scores (0.1).
        num_classes: ``C``; default the largest label seen by :meth:`fit` plus one.

    Inputs:
        +------------------------+-------------------------------+----------------------+
        | student_features       | teacher_features              | returns              |
        +========================+===============================+======================+
        | float ``[B, dφ]``      | float ``[B, dψ]`` (detached)  | ``(mse, {"mse"})``   |
        +------------------------+-------------------------------+----------------------+

    Example::

        obj = fusion_aft.objectives.create("btune", 8, {"a": 10, "b": 6})
        y = torch.randint(0, 3, (100,))
        obj.fit(torch.randn(100, 16), y, student_features=torch.randn(100, 8))
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 16))
        obj.teacher_weights()             # {"a": w_a, "b": w_b}, summing to 1
    """

    needs_fit = True
    _resizable = ("m_student", "m_teacher", "target_map")

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, temperature: float = 0.1,
                 num_classes: int | None = None) -> None:
        super().__init__(student_dim, teacher_dims)
        if not temperature > 0:
            raise UserInputError(f"objective 'btune': temperature must be > 0, got {temperature!r}")
        if num_classes is not None and int(num_classes) < 1:
            raise UserInputError(f"objective 'btune': num_classes must be >= 1, got {num_classes!r}")
        self.temperature = float(temperature)
        self.num_classes = None if num_classes is None else int(num_classes)
        self._set_options(temperature=self.temperature, num_classes=self.num_classes)
        c = self.num_classes or 0
        m = len(self.teacher_dims)
        self.register_buffer("m_student", torch.zeros(c, self.student_dim))
        self.register_buffer("m_teacher", torch.zeros(c, self.teacher_dim))
        self.register_buffer("target_map", torch.zeros(c, self.teacher_dim))
        self.register_buffer("scores", torch.zeros(m))
        self.register_buffer("weights", torch.zeros(m))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self._is_fitted = False

    def fit(self, teacher_features: torch.Tensor, labels: torch.Tensor,
            student_features: torch.Tensor | None = None) -> None:
        """Run LogME on the labelled rows for every teacher block and for the student features.

        ``teacher_features`` is a ``[N, dψ]`` tensor or a lazy view of the bank (``block(slice)``):
        each teacher's block is read in turn, on the host for the bank, never the whole bank at once.
        """
        if student_features is None:
            raise UserInputError("objective 'btune': fit() needs student_features (the student's features at "
                                 "initialisation on the same rows)")
        lazy = hasattr(teacher_features, "block")
        psi = teacher_features if lazy else torch.as_tensor(teacher_features)
        where = torch.device("cpu") if lazy else psi.device
        phi = torch.as_tensor(student_features).to(where)
        y = torch.as_tensor(labels).to(device=where, dtype=torch.long).reshape(-1)
        shape = feature_shape(psi)
        if len(shape) != 2 or shape[1] != self.teacher_dim:
            raise UserInputError(f"objective 'btune': teacher features must be [N, {self.teacher_dim}], "
                                 f"got {shape}")
        if phi.ndim != 2 or phi.shape[1] != self.student_dim:
            raise UserInputError(f"objective 'btune': student features must be [N, {self.student_dim}], "
                                 f"got {tuple(phi.shape)}")
        if not shape[0] == phi.shape[0] == y.shape[0]:
            raise UserInputError(f"objective 'btune': fit() got {shape[0]} teacher rows, {phi.shape[0]} "
                                 f"student rows and {y.shape[0]} labels; give the same rows to all three")
        labelled = y >= 0
        n_lab = int(labelled.sum())
        if n_lab < 2:
            raise UserInputError(f"objective 'btune': LogME needs at least 2 labelled rows, got {n_lab}")
        y_lab = y[labelled]
        c = self.num_classes if self.num_classes is not None else int(y_lab.max()) + 1
        scores, blocks = [], []
        for name, sl in self.teacher_slices().items():
            res = logme(feature_block(psi, sl).to(where)[labelled], y_lab, c)
            scores.append(res.evidence)
            blocks.append(res.weights)
            log.info("btune: LogME of %s = %.4f", name, res.evidence)
        student_res = logme(phi[labelled], y_lab, c)
        scores_t = torch.tensor(scores, dtype=torch.float64)
        w = torch.softmax(scores_t / self.temperature, dim=0)
        widths = torch.tensor(list(self.teacher_dims.values()))
        m_teacher = torch.cat([b.cpu() for b in blocks], dim=1)
        dtype, device = self.scores.dtype, self.scores.device
        self.m_student = student_res.weights.to(device=device, dtype=dtype)
        self.m_teacher = m_teacher.to(device=device, dtype=dtype)
        self.target_map = (m_teacher * torch.repeat_interleave(w, widths).unsqueeze(0)).to(device=device,
                                                                                           dtype=dtype)
        self.scores.copy_(scores_t.to(dtype))
        self.weights.copy_(w.to(dtype))
        self.fitted.fill_(True)
        self._is_fitted = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # torch hook
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._is_fitted = bool(self.fitted)

    def teacher_weights(self) -> OrderedDict[str, float]:
        """``w_k`` per teacher (softmax of the LogME scores / temperature)."""
        return OrderedDict((k, float(v)) for k, v in zip(self.teacher_dims, self.weights.cpu(), strict=True))

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        if not self._is_fitted:
            raise UserInputError("objective 'btune' must be fitted first: call "
                                 ".fit(teacher features, labels, student_features=...)")
        pred = student @ self.m_student.to(student.dtype).T
        target = teacher @ self.target_map.to(teacher.dtype).T
        mse = torch.mean(torch.square(pred - target))
        return mse, {"mse": mse.detach()}
