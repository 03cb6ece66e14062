"""A learned advantage transformation for PPO: a learnable component beside drifts and
objectives, discovered by the same task, meta-optimisers, curricula and zoo.

PPO-clip maximises ``E[r A - D_clip(r, A)]`` (Schulman et al., 2017, in the Mirror
Learning form of Lu et al., 2022). This component learns a map ``f(A, progress)`` of the
per-minibatch normalised advantage, and PPO-clip trains on ``f(A)`` in its place:
``E[r f(A) - D_clip(r, f(A))]``. It reaches PPO through PPO's drift argument, unchanged:
with ``D'(r, A) = D_clip(r, f(A)) - r (f(A) - A)``, PPO's ``r A - D'(r, A)`` is exactly
``r f(A) - D_clip(r, f(A))``. ``D'`` is not a Mirror Learning drift (it can be negative,
and its gradient at ``r = 1`` is ``A - f(A)``); it is how this surrogate enters PPO. So the
drift task scores it, ES and meta-gradients (through K PPO updates) train it, the
curricula draw its levels, and held-out evaluation sets it against PPO-clip (``f`` the
identity) and DPO, with no code of their own.

``f(A, p) = A + w2 . tanh(w1 . x)`` with ``x = [A, |A|, 1]`` (temporally aware: also
``p x``, as TA-LPO feeds training progress; Jackson et al., 2024). ``w2 = 0`` is the
identity, where every run starts: PPO-clip, the task's baseline.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from discovery import drift_training, meta_run
from discovery.components import RecipeError
from discovery.drift import Drift, ppo_clip_drift
from discovery.drift_training import MetaTrainConfig
from discovery.pipeline import BuiltRun, MetaTrainResult, meta_optimizer_name
from discovery.plots import pyplot

Params = dict[str, jax.Array]
KINDS = ("lat", "ta_lat")  # learned advantage transformation, and its temporally aware form


def _features(advantage: jax.Array, progress: jax.Array, temporally_aware: bool) -> jax.Array:
    x = jnp.stack([advantage, jnp.abs(advantage), jnp.ones_like(advantage)], axis=-1)
    return jnp.concatenate([x, progress * x], axis=-1) if temporally_aware else x


def make_advantage_transform(
    hidden: int = 16, temporally_aware: bool = False
) -> tuple[Callable[[jax.Array], Params], Callable[..., jax.Array]]:
    """``(init, transform)``: ``init(key)`` draws ``w1`` and zeroes ``w2`` (the identity);
    ``transform(params, advantage, progress) -> f(A)``, elementwise in ``advantage``."""
    num_inputs = 6 if temporally_aware else 3

    def init(key: jax.Array) -> Params:
        w1 = jax.nn.initializers.lecun_normal()(key, (num_inputs, hidden), jnp.float32)
        return {"w1": w1, "w2": jnp.zeros((hidden, 1), jnp.float32)}

    def transform(params: Params, advantage: jax.Array, progress: jax.Array) -> jax.Array:
        x = _features(advantage, progress, temporally_aware)
        return advantage + (jnp.tanh(x @ params["w1"]) @ params["w2"])[..., 0]

    return init, transform


def make_advantage_drift(
    hidden: int = 16, temporally_aware: bool = False, clip_eps: float = 0.2
) -> Drift:
    """The transformation as the drift PPO takes (see the module docstring):
    ``D'(r, A) = D_clip(r, f(A)) - r (f(A) - A)``, PPO-clip exactly at ``w2 = 0``."""
    init, transform = make_advantage_transform(hidden, temporally_aware)

    def apply(params, ratio, advantage, progress):
        shaped = transform(params, advantage, progress)
        return ppo_clip_drift(ratio, shaped, clip_eps) - ratio * (shaped - advantage)

    return Drift(KINDS[int(temporally_aware)], init, apply, learnable=True)


@dataclass(frozen=True)
class AdvantageMetaTrainConfig(MetaTrainConfig):
    """A meta-training run of a learned advantage transformation: every field of a drift
    run (:class:`discovery.drift_training.MetaTrainConfig`: task, ES, meta-gradients,
    curriculum, checkpoints), with PPO-clip as the agents' drift and these in addition.

    Attributes:
      hidden: width of the transformation's hidden layer.
      temporally_aware: whether ``f`` also sees training progress (``ta_lat``).
    """

    component: Literal["advantage"] = "advantage"
    name: str = "lat-cartpole-demo"
    hidden: int = field(default=16, metadata={"min": 1})
    temporally_aware: bool = False

    @property
    def learned_name(self) -> str:
        return KINDS[int(self.temporally_aware)]

    def __post_init__(self) -> None:
        super().__post_init__()
        default = MetaTrainConfig().task.drift
        if self.task.drift != default:
            raise ValueError(
                f"task.drift={self.task.drift!r} names a drift run's learnable drift; an "
                "advantage run trains PPO-clip on the learned advantage (leave task.drift "
                f"at {default!r}; use temporally_aware for the progress-aware form)"
            )


def recipe_of(config: AdvantageMetaTrainConfig) -> tuple[dict[str, Any], str]:
    """``(recipe, meta-optimiser)`` of the transformation a run of ``config`` discovers."""
    optimizer = meta_optimizer_name(config)
    clip_eps = inspect.signature(make_advantage_drift).parameters["clip_eps"].default
    recipe = {"kind": config.learned_name, "hidden": config.hidden, "clip_eps": clip_eps}
    return recipe, optimizer


def rebuild(recipe: Mapping[str, Any]) -> Drift:
    """The transformation (as PPO's drift) a zoo recipe describes; :class:`RecipeError`
    naming the field when it does not build one."""
    kwargs = dict(recipe)
    kind = kwargs.pop("kind", None)
    if kind not in KINDS:
        raise RecipeError(f"field 'component.kind' is {kind!r}; allowed: {list(KINDS)}",
                          "component.kind")
    try:
        return make_advantage_drift(temporally_aware=kind == "ta_lat", **kwargs)
    except TypeError as e:
        raise RecipeError(
            f"field 'component' {dict(recipe)!r} does not build a {kind} transformation: {e}; "
            "expected 'hidden' and 'clip_eps'",
            "component",
        ) from e


def build(config: AdvantageMetaTrainConfig) -> BuiltRun:
    """The drift task, meta-optimiser and curriculum of a drift run, over this
    transformation's params."""
    drift = make_advantage_drift(config.hidden, config.temporally_aware)
    return drift_training.build(config, learnable=drift)


check_meta_train = drift_training.check_meta_train


def plot_learned_advantage(result: MetaTrainResult, config: AdvantageMetaTrainConfig) -> str:
    """``advantage.png``: the learned ``f(A)`` against the identity (PPO-clip's), at the
    start, middle and end of training; returns the file's name."""
    _, transform = make_advantage_transform(config.hidden, config.temporally_aware)
    advantage = jnp.linspace(-3.0, 3.0, 121, dtype=jnp.float32)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(advantage, advantage, "k--", label="identity (PPO-clip)")
    for progress in (0.0, 0.5, 1.0):
        shaped = transform(result.mean_params, advantage, jnp.float32(progress))
        ax.plot(advantage, np.asarray(shaped), label=f"learned, progress {progress:g}")
    ax.set_xlabel("normalised advantage A")
    ax.set_ylabel("f(A)")
    ax.set_title(f"{config.name}: learned advantage ({config.learned_name})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(result.run_dir / "advantage.png", dpi=100)
    plt.close(fig)
    return "advantage.png"


write_results = partial(meta_run.write_results, plot_learned=plot_learned_advantage)
run_meta_training = partial(meta_run.run_meta_training, write=write_results)
