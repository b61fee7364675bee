"""Relational knowledge distillation (Park et al., CVPR 2019): match distances and angles."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Metrics, Objective
from fusion_aft.objectives.kernels import centre, gram
from fusion_aft.objectives.registry import register_objective

#: distances below this count as zero (same as Park et al.'s ``pdist`` clamp)
_EPS = 1e-12


def normalised_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances divided by the mean of the positive ones (``[B, B]``).

    Computed from the Gram of the centred rows (distances are translation-invariant, and
    centring keeps ``‖x_i‖² + ‖x_j‖² − 2 x_i·x_j`` accurate); the diagonal is exactly zero.
    """
    g = gram(centre(x))
    sq = torch.diagonal(g)
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * g).clamp_min(_EPS)
    d = torch.sqrt(d2)
    eye = torch.eye(d.shape[0], dtype=torch.bool, device=d.device)
    d = d.masked_fill(eye, 0.0)
    positive = d > 0
    mean = (d * positive).sum() / positive.sum().clamp_min(1)
    return d / mean.clamp_min(_EPS)


def anchor_rows(batch: int, anchors: int | None) -> torch.Tensor | None:
    """Evenly spaced anchor rows ``i`` for the angle term, or ``None`` for every row.

    Deterministic (no random draw): batches are already shuffled, and rows spread over the whole
    batch reach both its labelled and its unlabelled part.
    """
    if anchors is None or anchors >= batch:
        return None
    return torch.linspace(0, batch - 1, anchors).round().long()


def triplet_angles(x: torch.Tensor, anchors: torch.Tensor | None = None) -> torch.Tensor:
    """``cos∠(x_j − x_i, x_k − x_i)`` for all triplets ``(i, j, k)`` (``[B, B, B]``).

    With ``anchors`` (row indices), only triplets whose apex ``i`` is one of them
    (``[A, B, B]``): ``O(A B²)`` instead of ``O(B³)``.

    Park et al. build the ``[B, B, D]`` tensor of normalised difference vectors; here the
    inner products come from the Gram ``G`` of the centred rows instead,
    ``(x_j − x_i)·(x_k − x_i) = G_jk − G_ij − G_ik + G_ii``, which costs ``O(B³)`` instead of
    ``O(B³ D)``. Degenerate differences (``j = i`` or duplicate rows) give 0, as in the paper's
    code where a zero vector normalises to zero.
    """
    g = gram(centre(x))
    sq = torch.diagonal(g)
    d2 = sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * g
    if anchors is not None:
        anchors = anchors.to(x.device)
        d2, g_apex, sq_apex = d2[anchors], g[anchors], sq[anchors]
    else:
        g_apex, sq_apex = g, sq
    valid = d2 > _EPS
    inv = torch.where(valid, torch.rsqrt(d2.clamp_min(_EPS)), torch.zeros_like(d2))  # [i, j]
    num = g.unsqueeze(0) - g_apex.unsqueeze(2) - g_apex.unsqueeze(1) + sq_apex.view(-1, 1, 1)  # [i, j, k]
    return num * inv.unsqueeze(2) * inv.unsqueeze(1)


@register_objective("rkd")
class RelationalKD(Objective):
    r"""Relational KD: ``R = (L_dist + 2 · L_angle) / 2``.

    Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019, §3.2 (baseline "RKD" in the
    experiments of Qiu et al. 2024, §4). With ``ψ`` the concatenated teacher features (no gradient):

    * distance term: ``L_dist = smoothL1(d̂(Φ), d̂(Ψ))`` averaged over all ``B²`` pairs, where
      ``d̂`` are the pairwise Euclidean distances divided by the mean of the positive ones;
    * angle term: ``L_angle = smoothL1(a(Φ), a(Ψ))`` averaged over all ``B³`` triplets, where
      ``a_ijk = cos∠(x_j − x_i, x_k − x_i)``.

    Both relations are computed from one ``B×B`` Gram per side, so the teacher width does not
    enter the ``O(B³)`` angle cost. No learned parameters.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ordered mapping teacher name → width.
        distance_weight: weight of the distance term (1).
        angle_weight: weight of the angle term (2).
        angle_anchors: average the angle term over triplets whose apex is one of this many
            evenly spaced rows of the batch instead of all ``B`` (``None``, the paper): the cost
            drops from ``O(B³)`` to ``O(anchors · B²)``; at ``B = 256`` all triplets take most of
            a small student's step on a CPU.

    Inputs:
        +---------------------------+-------------------------------+----------------------------------+
        | student_features          | teacher_features              | returns                          |
        +===========================+===============================+==================================+
        | float ``[B, dφ]``, B >= 2 | float ``[B, dψ]`` (detached)  | ``(R, {"distance", "angle"})``   |
        +---------------------------+-------------------------------+----------------------------------+

    Example::

        obj = fusion_aft.objectives.create("rkd", 8, {"a": 10})
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    needs_pairs = True

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, distance_weight: float = 1.0,
                 angle_weight: float = 2.0, angle_anchors: int | None = None) -> None:
        super().__init__(student_dim, teacher_dims)
        whole = isinstance(angle_anchors, int) and not isinstance(angle_anchors, bool)
        if angle_anchors is not None and not (whole and angle_anchors >= 1):
            raise UserInputError(
                f"objective 'rkd': angle_anchors must be a whole number >= 1 (or None for all rows), "
                f"got {angle_anchors!r}"
            )
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)
        self.angle_anchors = None if angle_anchors is None else int(angle_anchors)
        self._set_options(distance_weight=self.distance_weight, angle_weight=self.angle_weight,
                          angle_anchors=self.angle_anchors)

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        anchors = anchor_rows(student.shape[0], self.angle_anchors)
        with torch.no_grad():
            t_dist = normalised_distances(teacher)
            t_angle = triplet_angles(teacher, anchors)
        dist = F.smooth_l1_loss(normalised_distances(student), t_dist)
        angle = F.smooth_l1_loss(triplet_angles(student, anchors), t_angle)
        loss = (self.distance_weight * dist + self.angle_weight * angle) / 2.0
        return loss, {"distance": dist.detach(), "angle": angle.detach()}
