"""Evolution strategies over evosax, behind Discovery's outer-loop protocol.

``make_es(config, example_params)`` returns an :class:`EvolutionStrategy` whose pure,
jittable ``init`` / ``ask`` / ``tell`` work on any pytree of float arrays (e.g. flax
params). Discovery **maximises** fitness (returns); evosax minimises, so ``tell``
negates fitness in exactly one place, just before handing it to evosax.

Strategies:
    - ``open_es``: OpenAI-ES (Salimans et al., 2017, "Evolution Strategies as a Scalable
      Alternative to Reinforcement Learning"), antithetic sampling, Adam on the
      search-gradient estimate, sigma and learning rate decayed to a floor (the LPO
      meta-training setting, Lu et al., 2022).
    - ``snes``: separable NES (Schaul et al., 2011, "High Dimensions and Heavy Tails for
      Natural Evolution Strategies"), per-dimension step sizes, rank utilities.
    - ``cma_es``: CMA-ES (Hansen, 2016, "The CMA Evolution Strategy: A Tutorial").
    - ``pgpe``: PGPE (Sehnke et al., 2010, "Parameter-exploring policy gradients"),
      symmetric sampling, adaptive per-dimension std, Adam on the mean.

One module (~410 lines): the config, its traced settings, the state and the four
strategies' ask / tell are one wrapper around evosax, read together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from evosax.algorithms import CMA_ES, PGPE, SNES, Open_ES
from evosax.core.fitness_shaping import (
    centered_rank_fitness_shaping_fn,
    identity_fitness_shaping_fn,
    standardize_fitness_shaping_fn,
)
from flax import struct

PyTree = Any

STRATEGIES = ("open_es", "snes", "cma_es", "pgpe")
FITNESS_SHAPINGS = ("centered_rank", "z_score", "raw")
# Strategies whose evosax implementation samples mirrored pairs (+eps, -eps).
_PAIRED_STRATEGIES = ("open_es", "pgpe")
# Strategies that step their mean with Adam (the rest take their own steps).
_ADAM_STRATEGIES = ("open_es", "pgpe")
# Adam's settings other than the learning rate stay constants of the program, as they
# were before the learning rate was traced (the same float ops, the same numbers).
_ADAM_STATIC = ("b1", "b2", "eps", "eps_root", "mu_dtype", "nesterov")

# Upper bounds of ESConfig: a population (its rollouts run at once) and a step size
# (sigma, lr) beyond these are typos, not settings.
MAX_POPULATION = 65536
MAX_STEP = 10.0

# None of the four strategies draws randomness in `tell`; evosax's signature wants a key.
_UNUSED_TELL_KEY_SEED = 0


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Static configuration of an evolution strategy (frozen, hashable).

    Defaults are the LPO MinAtar re-implementation setting (Jackson et al., 2024,
    "Discovering Temporally-Aware Reinforcement Learning Algorithms"): OpenAI-ES,
    population 64, sigma 0.03 x0.99 per generation floored at 0.01, Adam lr 0.03 x0.99
    floored at 0.001, centred ranks, antithetic pairs.

    Which fields each strategy uses:
        - ``sigma_init``: every strategy's initial step size. ``sigma_decay`` and
          ``sigma_limit`` only drive ``open_es``, whose sigma follows the schedule
          ``max(sigma_init * sigma_decay**t, sigma_limit)``; snes, cma_es and pgpe
          adapt their step sizes themselves.
        - ``lr_*``: Adam on the mean for ``open_es`` and ``pgpe`` with learning rate
          ``max(lr_init * lr_decay**t, lr_limit)``. snes takes the natural-gradient
          step with unit rate (Schaul et al., 2011) and cma_es its weighted
          recombination (Hansen, 2016, eq. 42); neither uses an lr.
        - ``fitness_shaping``: ``open_es`` and ``pgpe``. snes and cma_es always use
          their own rank-based weights, which any of the (monotone) shapings leaves
          unchanged.
        - ``antithetic``: ``open_es`` only. pgpe always samples symmetric pairs
          (Sehnke et al., 2010); snes and cma_es never do.
    ``open_es`` and ``pgpe`` need an even ``population_size`` (evosax asserts it).
    """

    # Bounds (checked by discovery.config when a config is loaded, and by __post_init__):
    # step sizes above 10 or a population above 65536 are typos, not settings.
    strategy: str = dataclasses.field(default="open_es", metadata={"choices": STRATEGIES})
    population_size: int = dataclasses.field(
        default=64, metadata={"min": 2, "max": MAX_POPULATION}
    )
    sigma_init: float = dataclasses.field(default=0.03, metadata={"gt": 0, "max": MAX_STEP})
    sigma_decay: float = dataclasses.field(default=0.99, metadata={"gt": 0, "max": 1})
    sigma_limit: float = dataclasses.field(default=0.01, metadata={"min": 0, "max": MAX_STEP})
    lr_init: float = dataclasses.field(default=0.03, metadata={"gt": 0, "max": MAX_STEP})
    lr_decay: float = dataclasses.field(default=0.99, metadata={"gt": 0, "max": 1})
    lr_limit: float = dataclasses.field(default=0.001, metadata={"min": 0, "max": MAX_STEP})
    fitness_shaping: str = dataclasses.field(
        default="centered_rank", metadata={"choices": FITNESS_SHAPINGS}
    )
    antithetic: bool = True

    def __post_init__(self) -> None:
        def bad(field: str, allowed: str) -> ValueError:
            value = getattr(self, field)
            return ValueError(f"ESConfig.{field}={value!r} is invalid; allowed: {allowed}")

        if self.strategy not in STRATEGIES:
            raise bad("strategy", ", ".join(STRATEGIES))
        if self.fitness_shaping not in FITNESS_SHAPINGS:
            raise bad("fitness_shaping", ", ".join(FITNESS_SHAPINGS))
        if not isinstance(self.antithetic, bool):
            raise bad("antithetic", "True or False")
        pop = self.population_size
        if isinstance(pop, bool) or not isinstance(pop, int) or not 2 <= pop <= MAX_POPULATION:
            raise bad("population_size", f"an int from 2 to {MAX_POPULATION}")
        if self.strategy in _PAIRED_STRATEGIES and pop % 2:
            raise bad(
                "population_size",
                f"an even int for strategy {self.strategy!r} (it samples +/- pairs)",
            )
        if self.strategy == "pgpe" and not self.antithetic:
            raise bad("antithetic", "True for strategy 'pgpe' (it always samples pairs)")
        for name in ("sigma", "lr"):
            # Written so that NaN fails every test (every comparison with NaN is False).
            if not 0 < getattr(self, f"{name}_init") <= MAX_STEP:
                raise bad(f"{name}_init", f"a float in (0, {MAX_STEP}]")
            if not 0 < getattr(self, f"{name}_decay") <= 1:
                raise bad(f"{name}_decay", "a float in (0, 1]")
            if not 0 <= getattr(self, f"{name}_limit") <= MAX_STEP:
                raise bad(f"{name}_limit", f"a float in [0, {MAX_STEP}]")

    def hyperparams(self) -> ESHyperparams:
        """This config's step-size settings as traced values (see :class:`ESHyperparams`)."""
        return ESHyperparams(
            **{name: jnp.asarray(getattr(self, name), jnp.float32) for name in TRACED_FIELDS}
        )


#: ``ESConfig`` fields that are traced values in the ES state rather than constants of
#: the compiled program.
TRACED_FIELDS = ("sigma_init", "sigma_decay", "sigma_limit", "lr_init", "lr_decay", "lr_limit")


@struct.dataclass
class ESHyperparams:
    """The step-size settings of an evolution strategy as float32 scalars carried in its
    state, as evosax carries its params: runs that differ only in these share one
    compiled program, and a sweep over them is one ``vmap``. What each field drives is
    in :class:`ESConfig`'s docstring.
    """

    sigma_init: jax.Array
    sigma_decay: jax.Array
    sigma_limit: jax.Array
    lr_init: jax.Array
    lr_decay: jax.Array
    lr_limit: jax.Array


@struct.dataclass
class ESState:
    """Search-distribution state: a pytree, serialisable with ``flax.serialization``.

    ``strategy_state`` is the evosax state of the chosen strategy (flat mean, step
    sizes, optimiser state, generation counter), with every leaf strongly typed so one
    compiled generation step serves all generations; ``hyperparams`` are the traced
    step-size settings.
    """

    strategy_state: Any
    hyperparams: ESHyperparams

    @property
    def generation(self) -> jax.Array:
        """Number of generations told so far (int32 scalar)."""
        return self.strategy_state.generation_counter


@struct.dataclass
class ESMetrics:
    """What ``tell`` reports about one generation; fitness statistics are over finite
    entries only (NaN when there are none), in Discovery's higher-is-better units.
    """

    fitness_mean: jax.Array  # [] float
    fitness_max: jax.Array  # [] float
    fitness_min: jax.Array  # [] float
    best_index: jax.Array  # [] int32, member with the highest finite fitness
    num_nonfinite: jax.Array  # [] int32, NaN / inf entries replaced before shaping
    sigma: jax.Array  # [] float, step size that generated the told population
    updated: jax.Array  # [] bool, False when the state was left unchanged


def exponential_schedule(
    init: float, decay: float, limit: float
) -> Callable[[jax.Array], jax.Array]:
    """Return ``t -> max(init * decay**t, limit)`` as float32: the per-generation sigma
    and Adam learning-rate schedule of LPO's OpenAI-ES (Lu et al., 2022).
    """

    def schedule(t: jax.Array) -> jax.Array:
        t = jnp.asarray(t, jnp.float32)
        init_, decay_, limit_ = (jnp.asarray(v, jnp.float32) for v in (init, decay, limit))
        return jnp.maximum(init_ * decay_**t, limit_)

    return schedule


def _sigma_at(hyperparams: ESHyperparams, t: jax.Array) -> jax.Array:
    h = hyperparams
    return exponential_schedule(h.sigma_init, h.sigma_decay, h.sigma_limit)(t)


def _lr_at(hyperparams: ESHyperparams, t: jax.Array) -> jax.Array:
    h = hyperparams
    return exponential_schedule(h.lr_init, h.lr_decay, h.lr_limit)(t)


def _strongly_typed(tree: PyTree) -> PyTree:
    """Drop weak types (evosax's init leaves Python scalars weak, its tell makes them
    strong), so the state's avals are the same before and after every ``tell``.
    """
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def _replace_nonfinite(fitness: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Give non-finite entries a value strictly below the worst finite one.

    The replacement is ``worst - max(0.1 * (best - worst), 1e-3 * max(|worst|, 1))``,
    so NaN / inf members take the worst rank without dominating a z-score.
    Args: fitness [P], higher is better. Returns (cleaned [P], finite [P] bool,
    any_finite [] bool); when nothing is finite, ``cleaned`` is all zeros.
    """
    finite = jnp.isfinite(fitness)
    any_finite = jnp.any(finite)
    worst = jnp.where(any_finite, jnp.min(jnp.where(finite, fitness, jnp.inf)), 0.0)
    best = jnp.where(any_finite, jnp.max(jnp.where(finite, fitness, -jnp.inf)), 0.0)
    margin = jnp.maximum(0.1 * (best - worst), 1e-3 * jnp.maximum(jnp.abs(worst), 1.0))
    cleaned = jnp.where(finite, fitness, worst - margin)
    return cleaned, finite, any_finite


class EvolutionStrategy:
    """Pure ask / tell over a pytree search distribution; build with :func:`make_es`.

    All methods are pure and jittable; the instance only holds static configuration
    (the evosax strategy object, the population size, the fitness shaping). The step
    sizes live in the state (:class:`ESHyperparams`): ``init`` takes them, by default
    the config's. Adam's learning rate is an injected hyperparameter
    (``optax.inject_hyperparams``) set from them before every ``tell``.
    """

    def __init__(self, config: ESConfig, example_params: PyTree) -> None:
        leaves = jax.tree.leaves(example_params)
        if not leaves:
            raise ValueError("example_params must contain at least one array leaf")
        for leaf in leaves:
            dtype = jnp.asarray(leaf).dtype
            if not jnp.issubdtype(dtype, jnp.floating):
                raise ValueError(f"example_params leaves must be float arrays, got dtype {dtype}")
        self.config = config
        self._treedef = jax.tree.structure(example_params)
        self._example = jax.tree.map(jnp.asarray, example_params)
        adam = optax.inject_hyperparams(optax.adam, static_args=_ADAM_STATIC)(
            learning_rate=config.lr_init
        )
        # A placeholder: init and tell set open_es's sigma from the state's settings.
        constant_sigma = optax.constant_schedule(jnp.float32(config.sigma_init))
        shaping = {
            "centered_rank": centered_rank_fitness_shaping_fn,
            "z_score": standardize_fitness_shaping_fn,
            "raw": identity_fitness_shaping_fn,
        }[config.fitness_shaping]
        pop = config.population_size
        if config.strategy == "open_es":
            self._es = Open_ES(
                pop,
                self._example,
                use_antithetic_sampling=config.antithetic,
                optimizer=adam,
                std_schedule=constant_sigma,
                fitness_shaping_fn=shaping,
            )
        elif config.strategy == "pgpe":
            self._es = PGPE(pop, self._example, optimizer=adam, fitness_shaping_fn=shaping)
        elif config.strategy == "snes":
            self._es = SNES(pop, self._example)
        else:
            self._es = CMA_ES(pop, self._example)

    def _evosax_params(self, hyperparams: ESHyperparams) -> Any:
        """evosax's params of the strategy, with its initial step size from ``hyperparams``
        (open_es has none: its sigma is the schedule's)."""
        if self.config.strategy == "open_es":
            return self._es.default_params
        return self._es.default_params.replace(std_init=hyperparams.sigma_init)

    @property
    def population_size(self) -> int:
        return self.config.population_size

    @property
    def num_dims(self) -> int:
        """Number of scalars searched over (all leaves ravelled)."""
        return int(self._es.num_dims)

    def init(
        self, key: jax.Array, mean_params: PyTree, hyperparams: ESHyperparams | None = None
    ) -> ESState:
        """Start the search distribution at ``mean_params`` (same structure as the
        example params); generation 0. ``hyperparams`` default to the config's
        (``ESConfig.hyperparams()``); any others (traced, e.g. vmapped) may be given.
        """
        if jax.tree.structure(mean_params) != self._treedef:
            raise ValueError(
                f"mean_params has structure {jax.tree.structure(mean_params)}, "
                f"expected {self._treedef}"
            )
        if hyperparams is None:
            hyperparams = self.config.hyperparams()
        inner = self._es.init(key, mean_params, self._evosax_params(hyperparams))
        if self.config.strategy == "open_es":
            inner = inner.replace(std=_sigma_at(hyperparams, 0))
        return ESState(strategy_state=_strongly_typed(inner), hyperparams=hyperparams)

    def ask(self, key: jax.Array, state: ESState) -> tuple[PyTree, ESState]:
        """Sample a population: the params pytree with a leading [P] axis on each leaf."""
        params = self._evosax_params(state.hyperparams)
        population, inner = self._es.ask(key, state.strategy_state, params)
        return population, state.replace(strategy_state=inner)

    def tell(
        self, state: ESState, population: PyTree, fitness: jax.Array
    ) -> tuple[ESState, ESMetrics]:
        """Update the distribution from ``fitness`` [P] (higher is better).

        Non-finite entries get a value below the worst finite one before shaping
        (:func:`_replace_nonfinite`). The state is left unchanged, generation counter
        included, when no entry is finite or the update would make the mean
        non-finite, so NaN can never reach the mean.
        """
        pop_size = self.config.population_size
        fitness = jnp.asarray(fitness, jnp.float32)
        if fitness.shape != (pop_size,):
            raise ValueError(f"fitness must have shape ({pop_size},), got {fitness.shape}")
        cleaned, finite, any_finite = _replace_nonfinite(fitness)

        hyperparams = state.hyperparams
        told = state.strategy_state
        if self.config.strategy in _ADAM_STRATEGIES:
            # Adam's step for this generation, lr_t with t = generations told (Adam's
            # own update count: both stay put when a generation is rejected).
            opt_state = told.opt_state
            lr = _lr_at(hyperparams, told.generation_counter)
            told = told.replace(opt_state=opt_state._replace(
                hyperparams={**opt_state.hyperparams, "learning_rate": lr}))
        # The one sign flip: Discovery maximises fitness, evosax minimises it.
        inner, _ = self._es.tell(
            jax.random.key(_UNUSED_TELL_KEY_SEED),
            population,
            -cleaned,
            told,
            self._evosax_params(hyperparams),
        )
        if self.config.strategy == "open_es":
            # evosax sets std from the counter *before* incrementing it, so sigma would
            # lag one generation behind; use sigma_t with t = generations told.
            inner = inner.replace(std=_sigma_at(hyperparams, inner.generation_counter))
        inner = _strongly_typed(inner)
        updated = any_finite & jnp.all(jnp.isfinite(inner.mean))
        inner = jax.tree.map(
            lambda new, old: jnp.where(updated, new, old), inner, state.strategy_state
        )

        num_finite = jnp.sum(finite)
        nan = jnp.float32(jnp.nan)
        metrics = ESMetrics(
            fitness_mean=jnp.where(
                any_finite,
                jnp.sum(jnp.where(finite, fitness, 0.0)) / jnp.maximum(num_finite, 1),
                nan,
            ),
            fitness_max=jnp.where(any_finite, jnp.max(jnp.where(finite, fitness, -jnp.inf)), nan),
            fitness_min=jnp.where(any_finite, jnp.min(jnp.where(finite, fitness, jnp.inf)), nan),
            best_index=jnp.argmax(jnp.where(finite, fitness, -jnp.inf)).astype(jnp.int32),
            num_nonfinite=(pop_size - num_finite).astype(jnp.int32),
            sigma=self.sigma(state),
            updated=updated,
        )
        return ESState(strategy_state=inner, hyperparams=hyperparams), metrics

    def mean(self, state: ESState) -> PyTree:
        """The search distribution's mean as a params pytree: what we deploy."""
        return self._es.get_mean(state.strategy_state)

    def sigma(self, state: ESState) -> jax.Array:
        """Step size for logging, a float scalar: the global sigma for open_es and
        cma_es, the mean per-dimension std for snes and pgpe.
        """
        return jnp.mean(state.strategy_state.std)

    def learning_rate(self, state: ESState) -> jax.Array:
        """Adam learning rate of the next update (open_es, pgpe), a float scalar."""
        return _lr_at(state.hyperparams, state.generation)


def make_es(config: ESConfig, example_params: PyTree) -> EvolutionStrategy:
    """Build the evolution strategy ``config`` describes over pytrees shaped like
    ``example_params`` (any pytree of float arrays, e.g. flax params).
    """
    return EvolutionStrategy(config, example_params)
