"""Tests for meta/es.py: evolution strategies behind the ask / tell protocol."""

import dataclasses

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Importing meta sets the XLA CPU flag; nothing above runs a JAX computation.
from discovery.meta.es import (
    ESConfig,
    ESMetrics,
    ESState,
    EvolutionStrategy,
    exponential_schedule,
    make_es,
)

pytestmark = pytest.mark.timeout(120)

TARGET = 3.0
EXAMPLE = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}

# Settings that solve the 7-dimensional toy problem in a few hundred generations.
TOY_CONFIGS = {
    "open_es": ESConfig(
        strategy="open_es",
        population_size=16,
        sigma_init=0.3,
        sigma_decay=0.99,
        sigma_limit=0.05,
        lr_init=0.1,
        lr_decay=0.995,
        lr_limit=0.01,
    ),
    "pgpe": ESConfig(
        strategy="pgpe",
        population_size=16,
        sigma_init=0.3,
        lr_init=0.1,
        lr_decay=0.995,
        lr_limit=0.01,
    ),
    "snes": ESConfig(strategy="snes", population_size=16, sigma_init=1.0),
    "cma_es": ESConfig(strategy="cma_es", population_size=16, sigma_init=1.0),
}


def toy_fitness(params):
    """Higher is better; maximum 0 at every entry equal to TARGET."""
    return -sum(jnp.sum((leaf - TARGET) ** 2) for leaf in jax.tree.leaves(params))


def make_generation(es: EvolutionStrategy, fitness_fn):
    def generation(state: ESState, key: jax.Array) -> tuple[ESState, ESMetrics]:
        population, state = es.ask(key, state)
        fitness = jax.vmap(fitness_fn)(population)
        return es.tell(state, population, fitness)

    return generation


def run(es: EvolutionStrategy, fitness_fn, num_generations: int, seed: int = 0):
    """Scan ``num_generations`` generations from a zero mean under one jit."""

    @jax.jit
    def go(key):
        init_key, scan_key = jax.random.split(key)
        state = es.init(init_key, jax.tree.map(jnp.zeros_like, EXAMPLE))
        keys = jax.random.split(scan_key, num_generations)
        return jax.lax.scan(make_generation(es, fitness_fn), state, keys)

    return go(jax.random.key(seed))


def flat_mean(es, state):
    return jnp.concatenate([x.ravel() for x in jax.tree.leaves(es.mean(state))])


@pytest.mark.parametrize("strategy", sorted(TOY_CONFIGS))
def test_every_strategy_maximises_toy_function(strategy):
    es = make_es(TOY_CONFIGS[strategy], EXAMPLE)
    state, metrics = run(es, toy_fitness, num_generations=300)
    mean = es.mean(state)
    chex.assert_trees_all_equal_shapes(mean, EXAMPLE)
    np.testing.assert_allclose(flat_mean(es, state), TARGET, atol=0.1)
    assert int(state.generation) == 300
    assert metrics.fitness_max[-1] > metrics.fitness_max[0]
    assert not np.any(np.asarray(metrics.num_nonfinite))


@pytest.mark.parametrize("strategy", sorted(TOY_CONFIGS))
def test_tell_maximises_not_minimises(strategy):
    # Fitness increases along +x: the mean must move up. A missing or doubled
    # negation in tell would send it down.
    es = make_es(TOY_CONFIGS[strategy], EXAMPLE)
    state, _ = run(es, lambda p: sum(jnp.sum(x) for x in jax.tree.leaves(p)), 10)
    assert np.all(np.asarray(flat_mean(es, state)) > 0.0)


def test_default_config_is_lpo_minatar_setting():
    config = ESConfig()
    assert (config.strategy, config.population_size) == ("open_es", 64)
    assert (config.sigma_init, config.sigma_decay, config.sigma_limit) == (0.03, 0.99, 0.01)
    assert (config.lr_init, config.lr_decay, config.lr_limit) == (0.03, 0.99, 0.001)
    assert config.fitness_shaping == "centered_rank" and config.antithetic
    assert hash(config) == hash(ESConfig())


def test_population_has_leading_axis_on_every_leaf():
    es = make_es(ESConfig(population_size=6), EXAMPLE)
    state = es.init(jax.random.key(0), EXAMPLE)
    population, _ = jax.jit(es.ask)(jax.random.key(1), state)
    chex.assert_trees_all_equal_structs(population, EXAMPLE)
    chex.assert_shape(population["a"], (6, 3))
    chex.assert_shape(population["b"], (6, 2, 2))
    # Antithetic pairs: the second half mirrors the first about the mean.
    np.testing.assert_allclose(population["a"][:3], -population["a"][3:], atol=1e-6)


@pytest.mark.parametrize("strategy", ["open_es", "pgpe"])
def test_odd_population_is_a_clear_error(strategy):
    with pytest.raises(ValueError, match=r"population_size=7.*even"):
        ESConfig(strategy=strategy, population_size=7)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strategy", "nes"),
        ("fitness_shaping", "rank"),
        ("sigma_init", 0.0),
        ("lr_decay", 1.5),
        ("sigma_limit", -1.0),
        ("population_size", 1),
    ],
)
def test_invalid_config_names_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"{field}={value!r}.*allowed"):
        ESConfig(**{field: value})


def test_odd_population_allowed_for_snes_and_cma_es():
    for strategy in ("snes", "cma_es"):
        es = make_es(ESConfig(strategy=strategy, population_size=7), EXAMPLE)
        population, _ = es.ask(jax.random.key(0), es.init(jax.random.key(1), EXAMPLE))
        chex.assert_shape(population["a"], (7, 3))


def test_wrong_fitness_shape_is_a_clear_error():
    es = make_es(ESConfig(population_size=4), EXAMPLE)
    state = es.init(jax.random.key(0), EXAMPLE)
    population, state = es.ask(jax.random.key(1), state)
    with pytest.raises(ValueError, match=r"fitness must have shape \(4,\)"):
        es.tell(state, population, jnp.zeros((4, 1)))


def test_half_nonfinite_population_keeps_mean_finite():
    es = make_es(ESConfig(population_size=8), EXAMPLE)
    state = es.init(jax.random.key(0), EXAMPLE)
    population, state = es.ask(jax.random.key(1), state)
    fitness = jnp.array([1.0, jnp.nan, 2.0, jnp.inf, 3.0, -jnp.inf, 4.0, jnp.nan])
    new_state, metrics = jax.jit(es.tell)(state, population, fitness)
    assert int(metrics.num_nonfinite) == 4
    assert bool(metrics.updated)
    np.testing.assert_allclose(metrics.fitness_mean, 2.5)
    np.testing.assert_allclose(metrics.fitness_max, 4.0)
    np.testing.assert_allclose(metrics.fitness_min, 1.0)
    assert int(metrics.best_index) == 6
    assert np.all(np.isfinite(np.asarray(flat_mean(es, new_state))))
    assert not np.allclose(flat_mean(es, new_state), flat_mean(es, state))
    assert int(new_state.generation) == 1


def test_nonfinite_members_rank_below_every_finite_member():
    # With centred ranks only the order matters: NaN / inf entries must act exactly
    # like a (tied) fitness below every finite one, +inf included.
    es = make_es(ESConfig(population_size=8), EXAMPLE)
    state = es.init(jax.random.key(0), EXAMPLE)
    population, state = es.ask(jax.random.key(1), state)
    finite = jnp.array([1.0, 5.0, 2.0, 7.0, 3.0, 0.0, 4.0, 6.0])
    broken = jnp.array([True, False, False, True, False, False, False, True])
    with_nans = jnp.where(broken, jnp.array([jnp.nan, 0, 0, jnp.inf, 0, 0, 0, -jnp.inf]), finite)
    very_bad = jnp.where(broken, -1e6, finite)
    tell = jax.jit(es.tell)
    chex.assert_trees_all_close(
        tell(state, population, with_nans)[0], tell(state, population, very_bad)[0]
    )


def test_all_nonfinite_leaves_state_unchanged():
    es = make_es(ESConfig(population_size=4), EXAMPLE)
    state = es.init(jax.random.key(0), EXAMPLE)
    population, state = es.ask(jax.random.key(1), state)
    fitness = jnp.array([jnp.nan, jnp.inf, -jnp.inf, jnp.nan])
    new_state, metrics = jax.jit(es.tell)(state, population, fitness)
    chex.assert_trees_all_equal(new_state, state)
    assert int(metrics.num_nonfinite) == 4
    assert not bool(metrics.updated)
    assert np.isnan(metrics.fitness_mean)


def test_exponential_schedule_decays_to_floor():
    schedule = jax.jit(exponential_schedule(0.03, 0.99, 0.01))
    t = jnp.arange(200)
    expected = np.maximum(0.03 * 0.99 ** np.arange(200), 0.01)
    np.testing.assert_allclose(schedule(t), expected, rtol=1e-5)
    assert float(schedule(199)) == pytest.approx(0.01)


def test_open_es_sigma_follows_decay_and_floor():
    config = ESConfig(population_size=4, sigma_init=0.1, sigma_decay=0.9, sigma_limit=0.05)
    es = make_es(config, EXAMPLE)
    _, metrics = run(es, toy_fitness, num_generations=12)
    # metrics.sigma[t] is the sigma that sampled generation t.
    expected = np.maximum(0.1 * 0.9 ** np.arange(12), 0.05)
    np.testing.assert_allclose(metrics.sigma, expected, rtol=1e-5)


@pytest.mark.parametrize("strategy", ["open_es", "pgpe"])
def test_adam_step_follows_lr_decay_and_floor(strategy):
    # A population of one mirrored pair with the + member always better gives the
    # same search gradient every generation, so each Adam step moves every
    # coordinate of the mean by exactly the scheduled learning rate.
    config = ESConfig(
        strategy=strategy,
        population_size=2,
        sigma_init=0.1,
        sigma_decay=1.0,
        lr_init=0.1,
        lr_decay=0.8,
        lr_limit=0.02,
    )
    es = make_es(config, EXAMPLE)

    @jax.jit
    def generation(state, _):
        mean = es.mean(state)
        population = jax.tree.map(lambda m: jnp.stack([m + 0.1, m - 0.1]), mean)
        new_state, _ = es.tell(state, population, jnp.array([1.0, 0.0]))
        step = flat_mean(es, new_state) - flat_mean(es, state)
        return new_state, (step, es.learning_rate(state))

    state = es.init(jax.random.key(0), EXAMPLE)
    _, (steps, lrs) = jax.lax.scan(generation, state, None, length=15)
    expected = np.maximum(0.1 * 0.8 ** np.arange(15), 0.02)
    np.testing.assert_allclose(lrs, expected, rtol=1e-5)
    np.testing.assert_allclose(steps, np.broadcast_to(expected[:, None], steps.shape), rtol=1e-3)


def test_one_compiled_generation_serves_all_generations():
    es = make_es(ESConfig(population_size=4), EXAMPLE)
    traced = chex.assert_max_traces(make_generation(es, toy_fitness), n=1)
    step = jax.jit(traced)
    state = es.init(jax.random.key(0), EXAMPLE)
    first = state
    for key in jax.random.split(jax.random.key(1), 4):
        state, _ = step(state, key)
    # Same avals (dtype, shape, weak type) before and after tells.
    chex.assert_trees_all_equal_dtypes(first, state)
    assert jax.tree.map(lambda x: x.weak_type, first) == jax.tree.map(lambda x: x.weak_type, state)
    assert int(state.generation) == 4


@pytest.mark.parametrize("strategy", ["open_es", "cma_es"])
def test_state_round_trips_through_flax_serialization(strategy):
    es = make_es(ESConfig(strategy=strategy, population_size=4), EXAMPLE)
    state = es.init(jax.random.key(0), EXAMPLE)
    population, state = es.ask(jax.random.key(1), state)
    state, _ = es.tell(state, population, jnp.arange(4.0))
    as_dict = flax.serialization.to_state_dict(state)
    template = es.init(jax.random.key(2), jax.tree.map(jnp.ones_like, EXAMPLE))
    restored = flax.serialization.from_state_dict(template, as_dict)
    chex.assert_trees_all_equal(restored, state)
    from_bytes = flax.serialization.from_bytes(template, flax.serialization.to_bytes(state))
    chex.assert_trees_all_equal(from_bytes, state)
    assert int(restored.generation) == 1


@pytest.mark.cross_program
@pytest.mark.parametrize("strategy", sorted(TOY_CONFIGS))
def test_step_size_settings_are_traced_so_a_sweep_over_them_is_one_program(strategy):
    """Two settings of sigma and lr (decays and floors too) vmapped through one compiled
    program give what two separately configured strategies give (to float error:
    vmapped linear algebra, e.g. CMA-ES's eigendecomposition, rounds differently)."""
    base = TOY_CONFIGS[strategy]
    settings = [base, dataclasses.replace(base, sigma_init=0.1, sigma_decay=0.9,
                                          lr_init=0.05, lr_decay=0.9)]
    es = make_es(base, EXAMPLE)

    def swept(hyperparams, key):
        state = es.init(key, jax.tree.map(jnp.zeros_like, EXAMPLE), hyperparams)
        keys = jax.random.split(key, 5)
        return jax.lax.scan(make_generation(es, toy_fitness), state, keys)

    hyperparams = jax.tree.map(lambda *v: jnp.stack(v), *[c.hyperparams() for c in settings])
    states, metrics = jax.jit(jax.vmap(swept, in_axes=(0, None)))(hyperparams, jax.random.key(4))
    assert not np.allclose(metrics.sigma[0], metrics.sigma[1]), "the settings differ"
    for index, config in enumerate(settings):
        alone = make_es(config, EXAMPLE)
        key = jax.random.key(4)
        state = alone.init(key, jax.tree.map(jnp.zeros_like, EXAMPLE))
        state, expected = jax.lax.scan(make_generation(alone, toy_fitness), state,
                                       jax.random.split(key, 5))
        mine = jax.tree.map(lambda x, i=index: x[i], metrics)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     mine, expected)
        np.testing.assert_allclose(
            flat_mean(es, jax.tree.map(lambda x, i=index: x[i], states)),
            flat_mean(alone, state), rtol=1e-4, atol=1e-5)
