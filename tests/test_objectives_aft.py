"""AFT and its kernel variants against independent numpy hand computations (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusion_aft.objectives import create, from_config
from fusion_aft.objectives.kernels import (
    centre,
    centred_gram,
    kernel_distance,
    kernel_from_gram,
    linear_kernel_distance,
    product_gram,
)
from fusion_aft.objectives.reference import ReferenceAFT, reference_aft_distance

DIMS = {"img": 3, "txt": 4}

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


# -- the hand computation ------------------------------------------------------------------------
def np_kernel(x: np.ndarray, kernel: str) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)
    x = x / (np.sqrt((x**2).sum(axis=1, keepdims=True)) + 1e-8)
    if kernel == "linear":
        return x @ x.T
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2)


def np_dk(phi: np.ndarray, feat: np.ndarray, kernel: str = "linear") -> float:
    diff = np_kernel(phi, kernel) - np_kernel(feat, kernel)
    return float(np.sqrt((diff**2).mean() + 1e-8))


def np_sigmoid(s: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-s))


def np_outer(blocks: list[np.ndarray]) -> np.ndarray:
    z = blocks[0]
    for b in blocks[1:]:
        z = np.einsum("bi,bj->bij", z, b).reshape(z.shape[0], -1)
    return z


def np_teacher_feature(psi, s, mu="diag", compose="concat", S=None, widths=(3, 4)):
    if mu == "dense":
        x = psi @ S
    else:
        x = psi * (np_sigmoid(s) if mu == "diag" else 0.5)
    if compose == "product":
        edges = np.cumsum((0, *widths))
        x = np_outer([x[:, a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return x


def central_diff(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(6, 5))
    psi = rng.normal(size=(6, 7)) + rng.normal(size=(1, 7))  # non-zero column means
    s = rng.normal(size=7)
    return phi, psi, s


def _torch_aft(name="aft", **options):
    obj = create(name, 5, DIMS, **options).double()
    return obj


def _loss_and_grads(obj, phi, psi, s=None):
    p = torch.tensor(phi, requires_grad=True)
    if s is not None:
        with torch.no_grad():
            obj.weights.s.copy_(torch.tensor(s))
    loss, metrics = obj(p, torch.tensor(psi))
    params = [p] + [q for q in obj.weights.parameters() if q.requires_grad]
    grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), [g.numpy() for g in grads], metrics


# -- the paper's objective ------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
def test_aft_loss_and_gradients_match_numpy(data, fused):
    phi, psi, s = data
    loss, (g_phi, g_s), metrics = _loss_and_grads(_torch_aft(fused=fused), phi, psi, s)
    assert loss == pytest.approx(np_dk(phi, np_teacher_feature(psi, s)), rel=1e-12)
    assert float(metrics["dk"]) == pytest.approx(loss)
    fd_phi = central_diff(lambda x: np_dk(x, np_teacher_feature(psi, s)), phi)
    fd_s = central_diff(lambda v: np_dk(phi, np_teacher_feature(psi, v)), s)
    np.testing.assert_allclose(g_phi, fd_phi, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g_s, fd_s, rtol=1e-6, atol=1e-9)
    assert np.abs(g_s).max() > 1e-4  # μ actually receives a gradient


def test_fused_and_generic_paths_agree_float32():
    torch.manual_seed(1)
    phi = torch.randn(128, 96, requires_grad=True)
    psi = torch.randn(128, 300) * 3 + 1
    w = torch.rand(300, requires_grad=True)
    fused = linear_kernel_distance(phi, centre(psi), w)
    g1 = torch.autograd.grad(fused, [phi, w])
    generic = kernel_distance(kernel_from_gram(centred_gram(phi)), kernel_from_gram(centred_gram(psi * w)))
    g2 = torch.autograd.grad(generic, [phi, w])
    assert float(fused) == pytest.approx(float(generic), rel=1e-5)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_reference_implementation_agrees(data):
    phi, psi, s = data
    obj = _torch_aft()
    with torch.no_grad():
        obj.weights.s.copy_(torch.tensor(s))
    ref = ReferenceAFT(7).double()
    with torch.no_grad():
        ref.s.copy_(torch.tensor(s))
    ours, _ = obj(torch.tensor(phi), torch.tensor(psi))
    theirs, metrics = ref(torch.tensor(phi), torch.tensor(psi))
    assert float(ours) == pytest.approx(float(theirs), rel=1e-12)
    assert metrics["dk"] == pytest.approx(np_dk(phi, psi * np_sigmoid(np.asarray(s))), rel=1e-12)


def test_teacher_features_get_no_gradient_student_and_s_do(data):
    phi, psi, _ = data
    obj = _torch_aft()
    p = torch.tensor(phi, requires_grad=True)
    t = torch.tensor(psi, requires_grad=True)
    loss, metrics = obj(p, t)
    loss.backward()
    assert t.grad is None
    assert p.grad is not None and obj.weights.s.grad is not None
    assert all(not v.requires_grad for v in metrics.values())


# -- properties of the paper (§3) ---------------------------------------------------------------
def test_uniform_mu_equals_no_weighting(data):
    phi, psi, _ = data
    unweighted = reference_aft_distance(torch.tensor(phi), torch.tensor(psi))
    for value in (-3.0, 0.0, 2.5):
        obj = _torch_aft()
        with torch.no_grad():
            obj.weights.s.fill_(value)
        loss, _ = obj(torch.tensor(phi), torch.tensor(psi))
        # equal up to the 1e-8 added to the row norms, which a common scale does not cancel
        assert float(loss) == pytest.approx(float(unweighted), rel=1e-6)
    fixed, _ = _torch_aft(mu="fixed")(torch.tensor(phi), torch.tensor(psi))
    assert float(fixed) == pytest.approx(float(unweighted), rel=1e-9)


def test_invariant_to_teacher_scale_and_student_rotation(data):
    phi, psi, s = data
    obj = _torch_aft()
    with torch.no_grad():
        obj.weights.s.copy_(torch.tensor(s))
    base, _ = obj(torch.tensor(phi), torch.tensor(psi))
    scaled, _ = obj(torch.tensor(phi), torch.tensor(psi * 37.5))
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))
    rotated, _ = obj(torch.tensor(phi @ q), torch.tensor(psi))
    assert float(scaled) == pytest.approx(float(base), rel=1e-7)
    assert float(rotated) == pytest.approx(float(base), rel=1e-9)
    # a per-feature rescaling is NOT a symmetry: that is what μ learns
    uneven, _ = obj(torch.tensor(phi), torch.tensor(psi * np.linspace(0.1, 5, 7)))
    assert abs(float(uneven) - float(base)) > 1e-3


@pytest.mark.parametrize(("d_phi", "d_psi"), [(64, 4096), (256, 256)])
def test_dk_at_init_with_independent_features_is_about_one_over_sqrt_d(d_phi, d_psi):
    """Off-diagonal cosines of independent centred features have variance ≈ 1/d on each side,
    so dk ≈ sqrt((1 − 1/B)(1/dφ + 1/dψ)): ≈ 1/sqrt(dφ) when the teacher is much wider."""
    b = 128
    gen = torch.Generator().manual_seed(0)
    values = []
    for _ in range(3):
        obj = create("aft", d_phi, {"t": d_psi})
        loss, _ = obj(torch.randn(b, d_phi, generator=gen), torch.randn(b, d_psi, generator=gen))
        values.append(float(loss))
    expected = math.sqrt((1 - 1 / b) * (1 / d_phi + 1 / d_psi))
    assert np.mean(values) == pytest.approx(expected, rel=0.05)
    if d_psi >= 16 * d_phi:
        assert np.mean(values) == pytest.approx(1 / math.sqrt(d_phi), rel=0.05)


# -- variants -------------------------------------------------------------------------------------
def test_rbf_variant_matches_numpy(data):
    phi, psi, s = data
    obj = _torch_aft("aft_rbf")
    assert obj.kernel == "rbf"
    loss, (g_phi, g_s), _ = _loss_and_grads(obj, phi, psi, s)
    assert loss == pytest.approx(np_dk(phi, np_teacher_feature(psi, s), "rbf"), rel=1e-12)
    fd_s = central_diff(lambda v: np_dk(phi, np_teacher_feature(psi, v), "rbf"), s)
    np.testing.assert_allclose(g_s, fd_s, rtol=1e-6, atol=1e-9)


def test_dense_variant_matches_numpy(data):
    phi, psi, _ = data
    obj = _torch_aft("aft_dense")
    S = obj.weights.S.detach().numpy().copy()
    assert S.shape == (7, 7)
    assert S.std() * math.sqrt(7) == pytest.approx(1.0, abs=0.5)  # N(0, 1)/sqrt(dψ)
    loss, (g_phi, g_S), _ = _loss_and_grads(obj, phi, psi)
    assert loss == pytest.approx(np_dk(phi, psi @ S), rel=1e-12)
    fd_S = central_diff(lambda m: np_dk(phi, psi @ m), S)
    np.testing.assert_allclose(g_S, fd_S, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(obj.mu.numpy(), np.linalg.norm(S, axis=1))  # documented μ report


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_product_variant_equals_explicit_outer_product(data, kernel):
    phi, psi, s = data
    obj = _torch_aft(compose="product", kernel=kernel)
    loss, (g_phi, g_s), _ = _loss_and_grads(obj, phi, psi, s)
    explicit = np_dk(phi, np_teacher_feature(psi, s, compose="product"), kernel)
    assert loss == pytest.approx(explicit, rel=1e-10)
    fd_s = central_diff(lambda v: np_dk(phi, np_teacher_feature(psi, v, compose="product"), kernel), s)
    np.testing.assert_allclose(g_s, fd_s, rtol=1e-5, atol=1e-9)


def test_product_of_three_teachers_equals_explicit():
    rng = np.random.default_rng(5)
    widths = (2, 3, 2)
    phi, psi, s = rng.normal(size=(9, 4)), rng.normal(size=(9, 7)) + 2.0, rng.normal(size=7)
    obj = create("aft", 4, {"a": 2, "b": 3, "c": 2}, compose="product").double()
    with torch.no_grad():
        obj.weights.s.copy_(torch.tensor(s))
    loss, _ = obj(torch.tensor(phi), torch.tensor(psi))
    assert float(loss) == pytest.approx(
        np_dk(phi, np_teacher_feature(psi, s, compose="product", widths=widths)), rel=1e-10)


# -- μ reporting, optimiser groups, state -------------------------------------------------------
def test_mu_by_teacher_shares_sum_to_one(data):
    _, _, s = data
    obj = _torch_aft()
    with torch.no_grad():
        obj.weights.s.copy_(torch.tensor(s))
    mu = np_sigmoid(s)
    report = obj.mu_by_teacher()
    assert list(report) == ["img", "txt"]
    assert sum(r["share"] for r in report.values()) == pytest.approx(1.0)
    assert report["img"]["share"] == pytest.approx(mu[:3].sum() / mu.sum())
    assert report["txt"]["mean"] == pytest.approx(mu[3:].mean())
    p = mu[3:] / mu[3:].sum()
    assert report["txt"]["entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(4))
    assert report["img"]["width"] == 3
    np.testing.assert_allclose(obj.mu.numpy(), mu)
    fresh = create("aft", 5, DIMS).mu_by_teacher()
    assert fresh["img"]["share"] == pytest.approx(3 / 7) and fresh["img"]["entropy"] == pytest.approx(1.0)


def test_param_groups_and_options():
    obj = create("aft", 5, DIMS)
    (group,) = obj.param_groups(student_lr=1e-4)
    assert group["lr"] == 1e-2 and group["params"][0] is obj.weights.s
    assert create("aft", 5, DIMS, mu_lr=3e-3).param_groups(1e-4)[0]["lr"] == 3e-3
    assert create("aft", 5, DIMS, mu="fixed").param_groups(1e-4) == []
    assert create("aft", 5, DIMS, train_mu=False).param_groups(1e-4) == []


def test_config_and_state_dict_rebuild_the_same_objective(data):
    phi, psi, s = data
    obj = create("aft_rbf", 5, DIMS, compose="product", mu_lr=5e-3).double()
    with torch.no_grad():
        obj.weights.s.copy_(torch.tensor(s))
    clone = from_config(obj.config()).double()
    clone.load_state_dict(obj.state_dict())
    assert clone.config() == obj.config()
    a, _ = obj(torch.tensor(phi), torch.tensor(psi))
    b, _ = clone(torch.tensor(phi), torch.tensor(psi))
    assert float(a) == float(b)


def test_learning_mu_favours_the_teacher_that_matches_the_student():
    """A few joint Adam steps on s alone move μ mass towards the informative teacher."""
    gen = torch.Generator().manual_seed(0)
    good = torch.randn(64, 8, generator=gen)
    noise = torch.randn(64, 8, generator=gen)
    student = good @ torch.linalg.qr(torch.randn(8, 8, generator=gen))[0]
    obj = create("aft", 8, {"good": 8, "noise": 8})
    opt = torch.optim.Adam([g["params"][0] for g in obj.param_groups(1e-3)], lr=obj.param_lr * 5)
    first = None
    for _ in range(60):
        loss, _ = obj(student, torch.cat([good, noise], dim=1))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.7 * first
    report = obj.mu_by_teacher()
    assert report["good"]["share"] > 0.6 > report["noise"]["share"]


def test_half_precision_teacher_bank_and_autocast():
    torch.manual_seed(0)
    phi = torch.randn(16, 5)
    psi = torch.randn(16, 7)
    obj = create("aft", 5, DIMS)
    full, _ = obj(phi, psi)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, _ = obj(phi.bfloat16(), psi.half())
    assert half.dtype == torch.float32
    assert float(half) == pytest.approx(float(full), abs=2e-2)


def test_product_kernel_is_accurate_in_float32_with_large_feature_means():
    """Teacher features with large means (e.g. after ReLU) must not lose the kernel to cancellation."""
    gen = torch.Generator().manual_seed(0)
    psi = torch.randn(64, 40, generator=gen) * 0.05 + 50
    a, b = psi[:, :24], psi[:, 24:]
    z = torch.einsum("bi,bj->bij", a.double(), b.double()).reshape(64, -1)
    exact = kernel_from_gram(centred_gram(z))
    ours = kernel_from_gram(product_gram([a, b]))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), exact, atol=1e-5, rtol=0)
