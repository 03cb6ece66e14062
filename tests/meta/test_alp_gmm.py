"""Tests for meta/alp_gmm.py: the ALP-GMM teacher (Portelas et al., 2019)."""

import copy
import dataclasses

import flax.serialization
import jax
import numpy as np
import pytest

from discovery.meta.alp_gmm import (
    ALPGMMConfig,
    ALPGMMState,
    fit_mixture,
    init,
    sample,
    stats,
    update,
)

pytestmark = pytest.mark.timeout(120)

SMALL = ALPGMMConfig(fit_every=20, fit_window=20, history_size=50, max_components=4)


def assert_states_equal(a: ALPGMMState, b: ALPGMMState) -> None:
    """Every leaf equal in value, dtype and shape."""
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        assert isinstance(y, np.ndarray)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def planted_clusters(seed: int, centres: list[list[float]], per_cluster: int = 150):
    rng = np.random.default_rng(seed)
    data = np.concatenate([rng.normal(c, 0.03, (per_cluster, len(c))) for c in centres])
    return data[rng.permutation(len(data))]


def in_region(points: np.ndarray) -> np.ndarray:
    """[n] bool: inside R = [0.6, 0.9] x [0.1, 0.4] (area 0.09)."""
    x, y = points[:, 0], points[:, 1]
    return (x >= 0.6) & (x <= 0.9) & (y >= 0.1) & (y <= 0.4)


def fitted_state(means: list[list[float]], weights: list[float], scale: float = 1e-6):
    """A state holding a hand-made mixture over (p, ALP) in d = 2 with tiny covariances."""
    config = ALPGMMConfig(max_components=4)
    state = init(config, 2)
    k = len(means)
    state_means = state.means.copy()
    state_means[:k] = means
    state_weights = state.weights.copy()
    state_weights[:k] = weights
    covariances = state.covariances.copy()
    covariances[:k] = scale * np.eye(3)
    return config, state.replace(
        means=state_means,
        weights=state_weights,
        covariances=covariances,
        active=np.arange(4) < k,
        fitted=np.array(True),
    )


# ----------------------------------------------------------------------------- mixture fit


def test_em_recovers_two_planted_clusters():
    centres = [[0.2, 0.2, 0.0], [0.8, 0.7, 0.5]]
    data = planted_clusters(0, centres)
    config = ALPGMMConfig(min_components=2, max_components=2, fit_every=300, fit_window=300)
    weights, means, covariances, active = fit_mixture(config, data, seed=0)
    assert active.tolist() == [True, True]
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], centres, atol=0.01)
    np.testing.assert_allclose(weights, [0.5, 0.5], atol=1e-6)
    # The planted per-coordinate variance is 0.03 ** 2 and coordinates are independent.
    np.testing.assert_allclose(covariances, np.tile(0.03**2 * np.eye(3), (2, 1, 1)), atol=3e-4)


def test_aic_covers_both_clusters_and_never_underfits():
    """AIC never merges two well-separated clusters into one component, and every
    component it keeps sits on a planted cluster; with k capped at the true count it
    picks exactly that count.
    """
    two = [[0.2, 0.2, 0.0], [0.8, 0.7, 0.5]]
    config = ALPGMMConfig(min_components=1, max_components=5, fit_every=300, fit_window=300)
    for seed in range(3):
        weights, means, _, active = fit_mixture(config, planted_clusters(seed, two), seed=seed)
        assert active.sum() >= 2
        assert not active[active.sum() :].any() and (weights[~active] == 0).all()
        nearest = np.argmin(np.linalg.norm(means[active, None] - np.array(two), axis=-1), axis=1)
        distance = np.linalg.norm(means[active] - np.array(two)[nearest], axis=-1)
        assert (distance < 0.1).all()
        mass = [weights[active][nearest == c].sum() for c in range(2)]
        np.testing.assert_allclose(mass, [0.5, 0.5], atol=1e-6)

    three = [[0.1, 0.1, 0.0], [0.9, 0.1, 0.3], [0.5, 0.9, 0.6]]
    config = ALPGMMConfig(min_components=1, max_components=3, fit_every=450, fit_window=450)
    _, means, _, active = fit_mixture(config, planted_clusters(5, three), seed=5)
    assert active.sum() == 3
    np.testing.assert_allclose(means[np.argsort(means[:, 2])], three, atol=0.01)


def mixture_log_likelihood(data, weights, means, covariances) -> float:
    """Total log-likelihood of [N, D] data, written out density by density."""
    dim = data.shape[1]
    density = np.zeros(len(data))
    for w, mean, cov in zip(weights, means, covariances):
        centred = data - mean
        maha = np.einsum("ni,ij,nj->n", centred, np.linalg.inv(cov), centred)
        norm = np.sqrt((2 * np.pi) ** dim * np.linalg.det(cov))
        density += w * np.exp(-0.5 * maha) / norm
    return float(np.sum(np.log(density)))


def test_aic_selects_the_lowest_aic_fit():
    """The kept k minimises 2 * params - 2 * log-likelihood over the fits for each k (each
    k's fit is seeded by (seed, k), so fitting k alone reproduces it); on this data AIC
    prefers the true k = 2 to every larger k.
    """
    data = planted_clusters(1, [[0.2, 0.2, 0.0], [0.8, 0.7, 0.5]])
    config = ALPGMMConfig(min_components=1, max_components=5, fit_every=300, fit_window=300)
    aic = {}
    for k in range(1, 6):
        single = dataclasses.replace(config, min_components=k, max_components=k)
        weights, means, covariances, _ = fit_mixture(single, data, seed=1)
        params = k * (3 + 6) + k - 1
        aic[k] = 2 * params - 2 * mixture_log_likelihood(data, weights, means, covariances)
    _, _, _, active = fit_mixture(config, data, seed=1)
    assert active.sum() == min(aic, key=aic.get) == 2


def test_em_weights_overlapping_clusters():
    """Clusters 4 standard deviations apart with weights 1/4 and 3/4: the overlap is only
    split right when the E-step weighs each density by its mixture weight.
    """
    rng = np.random.default_rng(0)
    data = np.concatenate(
        [rng.normal([0.4, 0.5], 0.05, (500, 2)), rng.normal([0.6, 0.5], 0.05, (1500, 2))]
    )
    config = ALPGMMConfig(
        min_components=2, max_components=2, fit_every=2000, fit_window=2000, em_iterations=200
    )
    weights, means, _, _ = fit_mixture(config, data, seed=0)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(weights[order], [0.25, 0.75], atol=0.01)
    np.testing.assert_allclose(means[order], [[0.4, 0.5], [0.6, 0.5]], atol=0.01)


# ----------------------------------------------------------------------------- ALP


def test_alp_is_distance_to_nearest_earlier_task_hand_computed():
    """History of 4 rows, so the 5th task evicts the 1st before the 6th looks it up."""
    config = ALPGMMConfig(fit_every=100, fit_window=4, history_size=4, max_components=2)
    points = np.array([[0, 0], [1, 1], [0.1, 0], [0.9, 1], [0.45, 0.5], [0.01, 0]])
    competence = np.array([0.5, 0.2, 0.9, 0.4, 0.0, 0.5])
    # 1st: no history -> 0.  2nd: nearest (0, 0) -> |0.2 - 0.5|.  3rd: nearest (0, 0) ->
    # |0.9 - 0.5|.  4th: nearest (1, 1) -> |0.4 - 0.2|.  5th: nearest (0.1, 0) (0.61 away
    # vs 0.67 for (0.9, 1)) -> |0.0 - 0.9|.  6th: (0, 0) was evicted, nearest (0.1, 0) ->
    # |0.5 - 0.9| (it would be 0 had (0, 0) stayed).
    expected_alp = [0.0, 0.3, 0.4, 0.2, 0.9, 0.4]
    state = update(config, init(config, 2), points, competence)
    assert int(state.count) == 6
    np.testing.assert_allclose(state.alp, np.array(expected_alp)[[4, 5, 2, 3]], atol=1e-12)
    np.testing.assert_array_equal(state.points, points[[4, 5, 2, 3]])
    np.testing.assert_array_equal(state.competence, competence[[4, 5, 2, 3]])
    # Recording one task at a time gives the same state.
    one_by_one = init(config, 2)
    for i in range(6):
        one_by_one = update(config, one_by_one, points[i : i + 1], competence[i : i + 1])
    assert_states_equal(state, one_by_one)


def test_fit_runs_every_fit_every_tasks_and_batching_does_not_matter():
    rng = np.random.default_rng(0)
    points = rng.random((130, 2))
    competence = rng.random(130)
    state = update(SMALL, init(SMALL, 2), points[:19], competence[:19])
    assert not bool(state.fitted) and int(state.since_fit) == 19
    state = update(SMALL, state, points[19:20], competence[19:20])
    assert bool(state.fitted) and int(state.since_fit) == 0
    assert SMALL.min_components <= state.active.sum() <= SMALL.max_components

    whole = update(SMALL, init(SMALL, 2), points, competence)
    chunked = init(SMALL, 2)
    for start in range(0, 130, 7):
        chunked = update(SMALL, chunked, points[start : start + 7], competence[start : start + 7])
    assert_states_equal(whole, chunked)
    assert int(whole.since_fit) == 10 and int(whole.count) == 130
    # The mixture is the fit on the last fit_window pairs at the 120th task.
    window = np.arange(100, 120) % SMALL.history_size
    data = np.concatenate([whole.points[window], whole.alp[window, None]], axis=1)
    expected = fit_mixture(SMALL, data, seed=120)
    for got, want in zip((whole.weights, whole.means, whole.covariances, whole.active), expected):
        np.testing.assert_array_equal(got, want)


def test_invalid_and_non_finite_entries_are_skipped():
    rng = np.random.default_rng(1)
    points = rng.random((30, 2))
    competence = rng.random(30)
    valid = np.ones(30, bool)
    valid[[3, 17]] = False
    competence[5] = np.nan
    points[9, 1] = np.inf
    competence[11] = -np.inf
    good = np.setdiff1d(np.arange(30), [3, 5, 9, 11, 17])
    got = update(SMALL, init(SMALL, 2), points, competence, valid)
    want = update(SMALL, init(SMALL, 2), points[good], competence[good])
    assert int(got.count) == 25 and bool(got.fitted)
    assert_states_equal(got, want)
    assert np.isfinite(got.points).all() and np.isfinite(got.alp).all()


# ----------------------------------------------------------------------------- teaching


def run_teacher(config: ALPGMMConfig, seed: int, rounds: int = 300, per_round: int = 4):
    """A student that learns only inside R: competence min(1, 0.005 * visits to R) there,
    0 elsewhere, plus N(0, 0.01) noise. Returns the share of proposals in R over the
    second half of the run.
    """
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    state = init(config, 2)
    visits = 0
    shares = []
    for _ in range(rounds):
        key, sample_key = jax.random.split(key)
        tasks = sample(config, sample_key, state, per_round)
        inside = in_region(tasks)
        competence = np.zeros(per_round)
        for i in np.flatnonzero(inside):
            visits += 1
            competence[i] = min(1.0, 0.005 * visits)
        competence += 0.01 * rng.standard_normal(per_round)
        shares.append(inside.mean())
        state = update(config, state, tasks, competence)
    return float(np.mean(shares[rounds // 2 :])), state


def test_teacher_concentrates_on_planted_progress():
    config = ALPGMMConfig(
        fit_every=50, fit_window=50, history_size=2000, max_components=6, em_iterations=50
    )
    share, state = run_teacher(config, seed=0)
    assert share > 0.35, share  # R covers 9% of the square.
    assert share == run_teacher(config, seed=0)[0]  # fixed seed, deterministic
    # The highest-ALP component sits in R.
    best = np.argmax(np.where(state.active, state.means[:, -1], -np.inf))
    assert in_region(state.means[best : best + 1, :2]).all()
    # Control: a teacher that only explores stays near R's area.
    uniform_share, _ = run_teacher(dataclasses.replace(config, random_fraction=1.0), seed=0)
    assert uniform_share < 0.15, uniform_share


# ----------------------------------------------------------------------------- sampling


def test_sample_before_fit_is_uniform():
    state = init(SMALL, 3)
    tasks = sample(SMALL, jax.random.key(0), state, 20000)
    assert tasks.shape == (20000, 3) and tasks.dtype == np.float32
    assert (tasks >= 0).all() and (tasks <= 1).all()
    for dim in range(3):
        counts, _ = np.histogram(tasks[:, dim], bins=10, range=(0, 1))
        np.testing.assert_allclose(counts / 20000, 0.1, atol=0.01)
    assert sample(SMALL, jax.random.key(0), state, 0).shape == (0, 3)


def test_sample_after_fit_follows_alp_and_random_fraction():
    # Components at (0.2, 0.2), (0.8, 0.8), (0.5, 0.5) with mean ALP 0.3, 0.1, -0.2.
    config, state = fitted_state(
        [[0.2, 0.2, 0.3], [0.8, 0.8, 0.1], [0.5, 0.5, -0.2]], [0.2, 0.3, 0.5]
    )
    config = dataclasses.replace(config, random_fraction=0.3)
    n = 20000
    tasks = sample(config, jax.random.key(1), state, n)
    assert tasks.dtype == np.float32 and (tasks >= 0).all() and (tasks <= 1).all()
    near = lambda c: np.all(np.abs(tasks - c) < 0.01, axis=1).mean()
    # Uniform draws land in a 0.02-wide square with probability 4e-4: negligible here.
    np.testing.assert_allclose(near(0.2), 0.7 * 0.75, atol=0.015)
    np.testing.assert_allclose(near(0.8), 0.7 * 0.25, atol=0.015)
    assert near(0.5) < 0.002  # negative mean ALP: never picked
    np.testing.assert_allclose(1 - near(0.2) - near(0.8), 0.3, atol=0.015)

    # Every mean ALP <= 0: components are picked by their mixture weights.
    config, state = fitted_state([[0.2, 0.2, 0.0], [0.8, 0.8, -0.1]], [0.25, 0.75])
    config = dataclasses.replace(config, random_fraction=0.0)
    tasks = sample(config, jax.random.key(2), state, n)
    np.testing.assert_allclose(near(0.2), 0.25, atol=0.015)
    np.testing.assert_allclose(near(0.8), 0.75, atol=0.015)


def test_sample_clips_to_unit_cube():
    config, state = fitted_state([[1.0, 0.0, 0.5]], [1.0], scale=0.04)
    config = dataclasses.replace(config, random_fraction=0.0)
    tasks = sample(config, jax.random.key(3), state, 2000)
    assert (tasks >= 0).all() and (tasks <= 1).all()
    assert (tasks[:, 0] == 1).mean() > 0.4 and (tasks[:, 1] == 0).mean() > 0.4


def test_sample_is_deterministic_and_update_is_pure():
    rng = np.random.default_rng(4)
    state = update(SMALL, init(SMALL, 2), rng.random((45, 2)), rng.random(45))
    assert bool(state.fitted)
    key = jax.random.key(7)
    np.testing.assert_array_equal(sample(SMALL, key, state, 64), sample(SMALL, key, state, 64))
    assert not np.array_equal(
        sample(SMALL, key, state, 64), sample(SMALL, jax.random.key(8), state, 64)
    )

    before = copy.deepcopy(state)
    points, competence = rng.random((30, 2)), rng.random(30)
    points_before, competence_before = points.copy(), competence.copy()
    new = update(SMALL, state, points, competence)
    assert_states_equal(state, before)
    np.testing.assert_array_equal(points, points_before)
    np.testing.assert_array_equal(competence, competence_before)
    assert int(new.count) == 75
    for old_leaf, new_leaf in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
        assert not np.shares_memory(old_leaf, new_leaf)


# ----------------------------------------------------------------------------- state


def test_state_round_trips_through_msgpack_exactly():
    rng = np.random.default_rng(5)
    state = update(SMALL, init(SMALL, 3), rng.random((73, 3)), rng.random(73))
    assert bool(state.fitted)
    blob = flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(state))
    restored = flax.serialization.from_state_dict(
        init(SMALL, 3), flax.serialization.msgpack_restore(blob)
    )
    assert_states_equal(state, restored)
    key = jax.random.key(0)
    np.testing.assert_array_equal(sample(SMALL, key, state, 32), sample(SMALL, key, restored, 32))


def test_init_shapes_and_stats():
    state = init(SMALL, 2)
    h, k = SMALL.history_size, SMALL.max_components
    shapes = {
        "points": (h, 2),
        "competence": (h,),
        "alp": (h,),
        "count": (),
        "weights": (k,),
        "means": (k, 3),
        "covariances": (k, 3, 3),
        "active": (k,),
        "fitted": (),
        "since_fit": (),
    }
    for name, shape in shapes.items():
        assert getattr(state, name).shape == shape, name
    assert stats(state) == {
        "components": 0.0,
        "alp_recent": 0.0,
        "history_size": 0.0,
        "tasks": 0.0,
    }
    points = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.1]])
    state = update(SMALL, state, points, np.array([0.5, 0.2, 0.9]))  # ALP 0, 0.3, 0.4
    got = stats(state, window=2)
    assert got["alp_recent"] == pytest.approx(0.35)
    assert got["history_size"] == 3.0 and got["tasks"] == 3.0
    rng = np.random.default_rng(6)
    state = update(SMALL, state, rng.random((60, 2)), rng.random(60))
    got = stats(state, window=SMALL.fit_window)
    assert got["history_size"] == SMALL.history_size and got["tasks"] == 63.0
    assert got["components"] == float(state.active.sum()) >= SMALL.min_components
    assert got["alp_recent"] == pytest.approx(np.mean(state.alp[np.arange(43, 63) % 50]))


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"fit_every": 0}, "fit_every"),
        ({"random_fraction": 1.5}, "random_fraction"),
        ({"random_fraction": float("nan")}, "random_fraction"),
        ({"history_size": 2.5}, "history_size"),
        ({"em_iterations": True}, "em_iterations"),
        ({"min_components": 5, "max_components": 3}, "min_components"),
        ({"fit_window": 300, "history_size": 200}, "fit_window"),
        ({"fit_every": 1}, "min_components"),
    ],
)
def test_config_validation_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"ALPGMMConfig\.{field}="):
        ALPGMMConfig(**changes)


def test_bad_inputs_are_rejected():
    state = init(SMALL, 2)
    with pytest.raises(ValueError, match="num_dims"):
        init(SMALL, 0)
    with pytest.raises(ValueError, match="expected"):
        update(SMALL, state, np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="valid"):
        update(SMALL, state, np.zeros((3, 2)), np.zeros(3), np.ones(2, bool))
