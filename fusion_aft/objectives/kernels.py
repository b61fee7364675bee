"""Kernel matrices and the kernel distance of AFT (Qiu et al. 2024, §3, the distance ``d_k``).

Every kernel here is derived from one B×B Gram matrix, so it costs one matmul per side:

* centring the columns of ``X`` and then taking ``X Xᵀ`` equals double-centring ``H (X Xᵀ) H``;
* row normalisation ``x_i / (‖x_i‖ + ε)`` turns a Gram ``G`` into
  ``K_ij = G_ij / ((√G_ii + ε)(√G_jj + ε))`` (the linear kernel of AFT);
* the RBF kernel on the same normalised rows is ``exp(−(K_ii + K_jj − 2 K_ij))``;
* the Gram of row-wise outer products ``a_i ⊗ b_i`` is the Hadamard product ``G_a ∘ G_b``,
  so the multimodal "product" feature is never materialised.

:func:`linear_kernel_distance` is the fused fast path used by ``aft`` and ``kkd`` for the
linear kernel: one autograd node with a hand-written backward (two matmuls instead of four).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: ε added to row norms before dividing (AFT: ``row / (‖row‖ + 1e-8)``)
NORM_EPS = 1e-8
#: ε inside the square root of the kernel distance
DIST_EPS = 1e-8

KERNELS = ("linear", "rbf")


def centre(x: torch.Tensor) -> torch.Tensor:
    """Subtract the batch mean of each column."""
    return x - x.mean(dim=0, keepdim=True)


def gram(x: torch.Tensor) -> torch.Tensor:
    """``X Xᵀ`` (one matmul)."""
    return x @ x.transpose(0, 1)


def centred_gram(x: torch.Tensor) -> torch.Tensor:
    """Gram of the column-centred rows, ``(HX)(HX)ᵀ``."""
    xc = centre(x)
    return xc @ xc.transpose(0, 1)


def double_centre(g: torch.Tensor) -> torch.Tensor:
    """``H G H`` with ``H = I − 11ᵀ/B``: the Gram of the column-centred features behind ``G``."""
    return g - g.mean(dim=0, keepdim=True) - g.mean(dim=1, keepdim=True) + g.mean()


def _uncentred_gram_f64(block: torch.Tensor) -> torch.Tensor:
    """``A Aᵀ`` in float64, assembled from centred parts so that large column means cost no
    precision: with ``A = 1āᵀ + Ã``, ``A Aᵀ = ÃÃᵀ + u1ᵀ + 1uᵀ + ‖ā‖²`` where ``u = Ã ā``."""
    mean = block.mean(dim=0)
    c = block - mean
    u = (c @ mean).double()
    return gram(c).double() + u.unsqueeze(1) + u.unsqueeze(0) + (mean @ mean).double()


def product_gram(blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Centred Gram of the flattened row-wise outer products of ``blocks`` (never built).

    ``vec(a_i ⊗ b_i) · vec(a_j ⊗ b_j) = (a_i·a_j)(b_i·b_j)``, so the Gram of the outer-product
    features is the Hadamard product of the blocks' (uncentred) Grams; centring the columns of
    the outer-product features is then the double-centring of that Gram. The matmuls run in
    the blocks' dtype on centred rows; the ``B×B`` Hadamard products and the double-centring,
    which cancel the large uncentred terms, run in float64.
    """
    g = _uncentred_gram_f64(blocks[0])
    for block in blocks[1:]:
        g = g * _uncentred_gram_f64(block)
    return double_centre(g).to(blocks[0].dtype)


def _safe_sqrt_diag(g: torch.Tensor) -> torch.Tensor:
    """Row norms ``√G_ii``; a zero row gets norm ~0 with zero gradient (never NaN)."""
    return torch.sqrt(torch.diagonal(g).clamp_min(torch.finfo(g.dtype).tiny))


def cosine_from_gram(g: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """The linear kernel of row-normalised features: ``G_ij / ((‖x_i‖+ε)(‖x_j‖+ε))``."""
    q = 1.0 / (_safe_sqrt_diag(g) + eps)
    return g * q.unsqueeze(1) * q.unsqueeze(0)


def rbf_from_cosine(k: torch.Tensor) -> torch.Tensor:
    """``exp(−‖a_i − a_j‖²)`` for rows ``a`` whose linear kernel is ``k``."""
    d = torch.diagonal(k)
    sq = (d.unsqueeze(1) + d.unsqueeze(0) - 2.0 * k).clamp_min(0.0)
    return torch.exp(-sq)


def kernel_from_gram(g: torch.Tensor, kernel: str = "linear") -> torch.Tensor:
    """AFT's kernel (``linear`` or ``rbf``) from the Gram of centred features."""
    k = cosine_from_gram(g)
    if kernel == "linear":
        return k
    if kernel == "rbf":
        return rbf_from_cosine(k)
    raise ValueError(f"unknown kernel {kernel!r}; known: {', '.join(KERNELS)}")


def kernel_distance(k1: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
    """``sqrt(mean((K1 − K2)²) + 1e-8)`` over all B² entries (diagonal included)."""
    return torch.sqrt(torch.mean(torch.square(k1 - k2)) + DIST_EPS)


# -- the fused linear-kernel distance ------------------------------------------------------------
def _cosine_parts(
    x: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``K = G ∘ qqᵀ`` for ``G = x xᵀ``, ``q_i = 1 / (‖x_i‖ + ε)``; also ``qqᵀ``, ``q``, the norms
    and ``diag(G)``, which the backward pass reuses."""
    g = x @ x.transpose(0, 1)
    diag = torch.diagonal(g)
    n = torch.sqrt(diag.clamp_min(torch.finfo(g.dtype).tiny))
    q = 1.0 / (n + NORM_EPS)
    qq = torch.outer(q, q)
    return g * qq, qq, q, n, diag


def _gram_backward(p: torch.Tensor, k: torch.Tensor, qq: torch.Tensor, q: torch.Tensor, n: torch.Tensor,
                   diag: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Half the gradient w.r.t. ``x`` of ``Σ P∘K`` for ``K = cosine_from_gram(x xᵀ)``, ``P`` symmetric
    (the caller folds the factor 2 into ``P``)."""
    # dG = P∘qqᵀ − diag(r), r_i = q_i (Σ_j P_ij K_ij) / n_i  (zero where the norm was clamped)
    r = (p * k).sum(dim=1) * (q / n)
    r.masked_fill_(diag <= torch.finfo(diag.dtype).tiny, 0.0)
    dg = p * qq
    dg.diagonal().sub_(r)
    return dg @ x


class _LinearKernelDistance(torch.autograd.Function):
    """dk between the linear kernels of centred student rows and (μ-weighted) centred teacher rows."""

    @staticmethod
    def forward(ctx, phi: torch.Tensor, psi_c: torch.Tensor, w: torch.Tensor | None):
        xs = phi - phi.mean(dim=0, keepdim=True)
        xt = psi_c * w if w is not None else psi_c
        ks, qqs, qs, ns, ds = _cosine_parts(xs)
        kt, qqt, qt, nt, dt = _cosine_parts(xt)
        diff = ks - kt
        dk = torch.sqrt(torch.mean(torch.square(diff)) + DIST_EPS)
        ctx.save_for_backward(xs, xt, psi_c, ks, qqs, qs, ns, ds, kt, qqt, qt, nt, dt, diff, dk)
        ctx.has_w = w is not None
        return dk

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        xs, xt, psi_c, ks, qqs, qs, ns, ds, kt, qqt, qt, nt, dt, diff, dk = ctx.saved_tensors
        b = diff.shape[0]
        # d dk / d K = diff / (B² dk); the 2 of d(x xᵀ)/dx is folded in here, once
        p = diff * (grad / dk * (2.0 / (b * b)))
        d_phi = d_w = None
        if ctx.needs_input_grad[0]:
            dx = _gram_backward(p, ks, qqs, qs, ns, ds, xs)
            d_phi = dx - dx.mean(dim=0, keepdim=True)
        if ctx.has_w and ctx.needs_input_grad[2]:
            # Kt enters dk with a minus sign: negate the [dψ] result instead of the B×B matrix
            dxt = _gram_backward(p, kt, qqt, qt, nt, dt, xt)
            d_w = (dxt * psi_c).sum(dim=0).neg_()
        return d_phi, None, d_w


def linear_kernel_distance(phi: torch.Tensor, psi_c: torch.Tensor, w: torch.Tensor | None = None
                           ) -> torch.Tensor:
    """AFT's ``d_k`` with the linear kernel, fused (one autograd node).

    Args:
        phi: student features ``[B, dφ]`` (centred here; gradients flow to them).
        psi_c: teacher features ``[B, dψ]``, already column-centred, no gradient.
        w: per-column teacher weights ``[dψ]`` (μ; gradients flow to them) or ``None``.

    Returns the scalar ``sqrt(mean((K − Kt)²) + 1e-8)``; equal to
    ``kernel_distance(kernel_from_gram(centred_gram(phi)), kernel_from_gram(gram(psi_c * w)))``.
    """
    return _LinearKernelDistance.apply(phi, psi_c, w)
