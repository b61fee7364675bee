"""The baseline objectives (KD, RKD, FT, B-Tuning) and the AFT ablations against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion_aft.errors import UserInputError
from fusion_aft.objectives import create, from_config
from fusion_aft.objectives.ft import validation_split
from fusion_aft.objectives.logme import logme

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def np_centre(x):
    return x - x.mean(axis=0, keepdims=True)


def np_dk(a, b, kernel="linear"):
    def k(x):
        x = np_centre(x)
        x = x / (np.sqrt((x**2).sum(1, keepdims=True)) + 1e-8)
        if kernel == "linear":
            return x @ x.T
        return np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return float(np.sqrt(((k(a) - k(b)) ** 2).mean() + 1e-8))


def np_smooth_l1(a, b):
    d = np.abs(a - b)
    return float(np.where(d < 1, 0.5 * d**2, d - 0.5).mean())


def np_rkd(s, t, anchors=None):
    """Park et al. 2019 written out with the [B, B, D] difference tensor (angle apexes: ``anchors``)."""
    def dist(x):
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
        return d / d[d > 0].mean()

    def angle(x):
        e = x[None, :, :] - x[:, None, :]  # e[i, j] = x_j - x_i
        n = np.sqrt((e**2).sum(-1, keepdims=True))
        e = e / np.maximum(n, 1e-12)
        a = np.einsum("ijd,ikd->ijk", e, e)
        return a if anchors is None else a[anchors]

    return (np_smooth_l1(dist(s), dist(t)) + 2 * np_smooth_l1(angle(s), angle(t))) / 2


def central_diff(f, x, h=1e-6):
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
    return rng.normal(size=(6, 4)) * 2.0, rng.normal(size=(6, 5)) + 1.0


# -- KD ------------------------------------------------------------------------------------------
def test_kd_is_mse_of_a_linear_head(data):
    phi, psi = data
    obj = create("kd", 4, {"a": 2, "b": 3}).double()
    w, b = obj.head.weight.detach().numpy(), obj.head.bias.detach().numpy()
    t = torch.tensor(psi, requires_grad=True)
    loss, metrics = obj(torch.tensor(phi), t)
    assert float(loss) == pytest.approx(float((((phi @ w.T + b) - psi) ** 2).mean()), rel=1e-12)
    loss.backward()
    assert t.grad is None and obj.head.weight.grad is not None
    assert obj.param_groups(student_lr=3e-4)[0]["lr"] == 3e-4  # the head learns at the student's lr
    out, _ = obj(torch.tensor(phi[:1]), torch.tensor(psi[:1]))  # no pairs needed
    assert torch.isfinite(out)


# -- RKD -----------------------------------------------------------------------------------------
def test_rkd_matches_park_et_al_and_its_gradient(data):
    phi, psi = data
    obj = create("rkd", 4, {"t": 5}).double()
    p = torch.tensor(phi, requires_grad=True)
    t = torch.tensor(psi, requires_grad=True)
    loss, metrics = obj(p, t)
    assert float(loss) == pytest.approx(np_rkd(phi, psi), rel=1e-10)
    assert float(loss) == pytest.approx((float(metrics["distance"]) + 2 * float(metrics["angle"])) / 2)
    loss.backward()
    assert t.grad is None
    np.testing.assert_allclose(p.grad.numpy(), central_diff(lambda x: np_rkd(x, psi), phi), rtol=1e-5,
                               atol=1e-9)


def test_rkd_angle_anchors_average_the_triplets_of_evenly_spaced_apexes():
    rng = np.random.default_rng(3)
    phi, psi = rng.normal(size=(9, 4)), rng.normal(size=(9, 6))
    obj = create("rkd", 4, {"t": 6}, angle_anchors=3).double()
    p = torch.tensor(phi, requires_grad=True)
    loss, _ = obj(p, torch.tensor(psi))
    assert float(loss) == pytest.approx(np_rkd(phi, psi, anchors=[0, 4, 8]), rel=1e-10)
    loss.backward()
    np.testing.assert_allclose(p.grad.numpy(), central_diff(lambda x: np_rkd(x, psi, [0, 4, 8]), phi),
                               rtol=1e-5, atol=1e-9)
    # as many anchors as rows (or more) is the full angle term
    full = create("rkd", 4, {"t": 6}, angle_anchors=9).double()(torch.tensor(phi), torch.tensor(psi))[0]
    assert float(full) == pytest.approx(np_rkd(phi, psi), rel=1e-10)
    assert from_config(obj.config()).angle_anchors == 3
    with pytest.raises(UserInputError, match="angle_anchors"):
        create("rkd", 4, {"t": 6}, angle_anchors=0)


def test_rkd_with_duplicate_rows_is_finite():
    x = torch.randn(5, 4)
    x[3] = x[1]
    loss, _ = create("rkd", 4, {"t": 4})(x, x.clone())
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


# -- FT ------------------------------------------------------------------------------------------
def _np_mlp(layers, x):
    """Apply the Linear/ReLU layers of an nn.Sequential in numpy."""
    for layer in layers:
        if isinstance(layer, torch.nn.Linear):
            x = x @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
        else:
            x = np.maximum(x, 0)
    return x


def _np_unit(x):
    return x / np.maximum(np.sqrt((x**2).sum(1, keepdims=True)), 1e-8)


def test_ft_translator_loss_matches_hand_computation(data):
    phi, psi = data
    torch.manual_seed(0)
    obj = create("ft", 4, {"a": 2, "b": 3}, max_epochs=2)
    obj.fit(torch.randn(64, 5), torch.zeros(64, dtype=torch.long))
    obj = obj.double()
    assert obj.factor_dims == [1, 1]
    # the last translator layer starts at zero: the student factor is 0 and R = Σ_blocks ‖t̂‖₁
    t_a = _np_unit(_np_mlp(obj.paraphrasers["a"].encoder, psi[:, :2]))
    t_b = _np_unit(_np_mlp(obj.paraphrasers["b"].encoder, psi[:, 2:]))
    teacher = np.concatenate([t_a, t_b], axis=1)
    loss0, _ = obj(torch.tensor(phi), torch.tensor(psi))
    assert float(loss0) == pytest.approx(np.abs(teacher).sum(1).mean(), rel=1e-10)
    with torch.no_grad():
        torch.nn.init.normal_(obj.translator[-1].weight)
    s = _np_mlp(obj.translator, phi)
    student = np.concatenate([_np_unit(s[:, :1]), _np_unit(s[:, 1:])], axis=1)
    loss, metrics = obj(torch.tensor(phi), torch.tensor(psi))
    assert float(loss) == pytest.approx(np.abs(teacher - student).sum(1).mean(), rel=1e-10)
    groups = obj.param_groups(student_lr=1e-3)
    trainable = {id(p) for g in groups for p in g["params"]}
    assert trainable == {id(p) for p in obj.translator.parameters()}  # paraphrasers stay frozen


def test_ft_autoencoder_early_stopping_uses_the_validation_split():
    n, d = 300, 6
    train_idx, val_idx = validation_split(n, 0.1, seed=0)
    assert len(val_idx) == 30 and set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert torch.equal(validation_split(n, 0.1, seed=0)[1], val_idx)  # deterministic
    gen = torch.Generator().manual_seed(0)
    centre = torch.full((d,), 3.0)
    x = centre + 0.1 * torch.randn(n, d, generator=gen)
    x[val_idx] = -centre + 0.1 * torch.randn(len(val_idx), d, generator=gen)  # learning train hurts val
    torch.manual_seed(0)
    obj = create("ft", 4, {"t": d}, lr=1e-2, max_epochs=200, patience=4)
    obj.fit(x, torch.full((n,), -1))
    rep = obj.fit_reports["t"]
    assert rep.stopped_early and rep.stopped_epoch < 200
    assert rep.best_epoch == int(np.argmin(rep.val_loss)) + 1
    assert rep.stopped_epoch == rep.best_epoch + 4
    assert rep.train_loss[-1] < rep.train_loss[rep.best_epoch - 1]  # training alone would go on
    ae = obj.paraphrasers["t"]
    with torch.no_grad():
        restored = torch.nn.functional.mse_loss(ae(x[val_idx]), x[val_idx])
    assert float(restored) == pytest.approx(min(rep.val_loss), rel=1e-5)  # best weights restored


def test_ft_state_round_trip_and_unfitted_error():
    obj = create("ft", 4, {"t": 6}, max_epochs=2)
    with pytest.raises(Exception, match="fitted first"):
        obj(torch.randn(4, 4), torch.randn(4, 6))
    obj.fit(torch.randn(40, 6), torch.zeros(40, dtype=torch.long))
    clone = from_config(obj.config())
    clone.load_state_dict(obj.state_dict())
    x, t = torch.randn(4, 4), torch.randn(4, 6)
    assert float(clone(x, t)[0]) == float(obj(x, t)[0])


# -- B-Tuning --------------------------------------------------------------------------------------
def test_btune_matches_hand_computation_and_prefers_the_informative_teacher():
    gen = torch.Generator().manual_seed(0)
    n, c = 120, 3
    y = torch.randint(0, c, (n,), generator=gen)
    good = torch.nn.functional.one_hot(y, c).double() @ torch.randn(c, 4, generator=gen, dtype=torch.float64)
    good = good + 0.1 * torch.randn(n, 4, generator=gen, dtype=torch.float64)
    noise = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    psi = torch.cat([good, noise], dim=1)
    phi = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    labels = y.clone()
    labels[::4] = -1  # unlabelled rows are left out of LogME
    obj = create("btune", 3, {"good": 4, "noise": 5}).double()
    obj.fit(psi, labels, student_features=phi)

    lab = labels >= 0
    r_good, r_noise = logme(good[lab], y[lab], c), logme(noise[lab], y[lab], c)
    r_student = logme(phi[lab], y[lab], c)
    scores = np.array([r_good.evidence, r_noise.evidence])
    w = np.exp((scores - scores.max()) / 0.1)
    w /= w.sum()
    weights = obj.teacher_weights()
    assert list(weights) == ["good", "noise"]
    np.testing.assert_allclose(list(weights.values()), w, rtol=1e-10)
    assert sum(weights.values()) == pytest.approx(1.0) and weights["good"] > 0.99

    batch_phi, batch_psi = phi[:16].numpy(), psi[:16].numpy()
    target = (w[0] * batch_psi[:, :4] @ r_good.weights.numpy().T
              + w[1] * batch_psi[:, 4:] @ r_noise.weights.numpy().T)
    expected = ((batch_phi @ r_student.weights.numpy().T - target) ** 2).mean()
    loss, _ = obj(phi[:16], psi[:16])
    assert float(loss) == pytest.approx(expected, rel=1e-10)


def test_btune_state_round_trip_resizes_buffers():
    gen = torch.Generator().manual_seed(1)
    obj = create("btune", 3, {"a": 4})
    y = torch.randint(0, 4, (50,), generator=gen)
    obj.fit(torch.randn(50, 4, generator=gen), y, student_features=torch.randn(50, 3, generator=gen))
    assert obj.m_student.shape == (4, 3)
    clone = from_config(obj.config())  # built before fit: class count unknown
    clone.load_state_dict(obj.state_dict())
    x, t = torch.randn(5, 3), torch.randn(5, 4)
    assert float(clone(x, t)[0]) == float(obj(x, t)[0])
    with pytest.raises(Exception, match="student_features"):
        create("btune", 3, {"a": 4}).fit(torch.randn(50, 4), y)


# -- AFT ablations ---------------------------------------------------------------------------------
def test_aft_no_kernel_is_centred_mse_of_a_projection(data):
    phi, psi = data
    obj = create("aft_no_kernel", 4, {"a": 5}).double()
    s = np.linspace(-1, 1, 5)
    with torch.no_grad():
        obj.weights.s.copy_(torch.tensor(s))
    w = obj.proj.weight.detach().numpy()
    proj = (psi / (1 + np.exp(-s))) @ w.T
    loss, metrics = obj(torch.tensor(phi), torch.tensor(psi))
    assert float(loss) == pytest.approx(float(((np_centre(phi) - np_centre(proj)) ** 2).mean()), rel=1e-12)
    groups = {g["name"]: g["lr"] for g in obj.param_groups(student_lr=1e-4)}
    assert groups == {"objective/mu": 1e-2, "objective/head": 1e-4}
    assert sum(r["share"] for r in obj.mu_by_teacher().values()) == pytest.approx(1.0)


def test_kkd_maps_the_student_and_leaves_the_teacher_unweighted(data):
    phi, psi = data
    obj = create("kkd", 4, {"a": 5}).double()
    w = obj.proj.weight.detach().numpy()
    loss, _ = obj(torch.tensor(phi), torch.tensor(psi))
    assert float(loss) == pytest.approx(np_dk(phi @ w.T, psi), rel=1e-12)
    assert obj.param_groups(student_lr=1e-4)[0]["lr"] == 1e-4
    rbf_obj = create("kkd", 4, {"a": 5}, kernel="rbf").double()
    w = rbf_obj.proj.weight.detach().numpy()
    rbf, _ = rbf_obj(torch.tensor(phi), torch.tensor(psi))
    assert float(rbf) == pytest.approx(np_dk(phi @ w.T, psi, kernel="rbf"), rel=1e-12)
    assert float(rbf) != pytest.approx(np_dk(phi @ w.T, psi), rel=1e-3)  # the kernel option is used


def test_none_is_zero_without_teachers():
    obj = create("none", 4, {})
    loss, metrics = obj(torch.randn(3, 4))
    assert float(loss) == 0.0 and metrics == {} and obj.uses_teachers is False
    assert obj.param_groups(1e-3) == []


@pytest.mark.parametrize("name", ["aft", "aft_dense", "aft_no_kernel", "kkd", "kd", "ft", "btune"])
def test_state_survives_a_safetensors_round_trip(name, tmp_path):
    from safetensors.torch import load_model, save_model

    gen = torch.Generator().manual_seed(2)
    obj = create(name, 3, {"a": 4, "b": 2}, **({"max_epochs": 2} if name == "ft" else {}))
    if obj.needs_fit:
        obj.fit(torch.randn(40, 6, generator=gen), torch.randint(0, 3, (40,), generator=gen),
                torch.randn(40, 3, generator=gen))
    with torch.no_grad():
        for p in obj.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    save_model(obj, str(tmp_path / "objective.safetensors"))
    clone = from_config(obj.config())
    load_model(clone, str(tmp_path / "objective.safetensors"), strict=True)
    x, t = torch.randn(5, 3, generator=gen), torch.randn(5, 6, generator=gen)
    assert float(clone(x, t)[0]) == float(obj(x, t)[0])
