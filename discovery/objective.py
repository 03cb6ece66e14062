"""Learned objectives: the LPG meta-network and its temporally-aware variant TA-LPG.

Learned Policy Gradient (Oh et al., 2020, Sec. 3) replaces an agent's hand-designed
update with the outputs of a recurrent meta-network that reads the agent's experience
backwards in time. Per step it sees ``[r_t, d_t, pi(a_t|s_t), phi(y_t), phi(y_t+1)]``
(``phi`` a shared Dense(16)-ReLU-Dense(1) embedding of the agent's prediction vector,
``phi(y_t+1)`` zeroed at terminals) and emits two targets from ``ReLU(h_t)``:
``pi_hat`` (Dense(1), no activation), which weights ``grad log pi(a_t|s_t)``, and
``y_hat`` (softmax(Dense(m))), which the agent's prediction ``y(s_t)`` is pulled towards.

The paper's network is an LSTM with ``m = 30`` that also sees the discount; GROOVE
(Jackson et al., 2023) uses a reverse GRU of 256 units, ``m = 8``, no discount input.
Both are options of :class:`ObjectiveConfig`; the default is GROOVE's. TA-LPG
(Jackson et al., 2024) also feeds the agent's training progress ``n / N`` and the log
of its lifetime ``log N`` at every step.

Every objective here is an :class:`Objective`: ``init(key) -> params`` and
``apply(params, inputs) -> ObjectiveTargets`` over one trajectory ``[T]``; agents vmap
it over their parallel environments and take the params as an argument, so one
compiled update serves a whole population of objectives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from discovery.agents.lpg_agent import ObjectiveInputs, ObjectiveTargets

Params = Any


@dataclass(frozen=True)
class ObjectiveConfig:
    """Shape of a learned objective (static: it fixes the network's shapes).

    Attributes:
      kind: ``"lpg"`` or ``"ta_lpg"`` (also sees lifetime progress and log lifetime).
      prediction_size: ``m``, the size of the agent's prediction vector ``y``.
      hidden_size: units of the recurrent cell.
      cell: ``"gru"`` (GROOVE) or ``"lstm"`` (LPG paper).
      discount_input: feed the discount ``gamma`` at every step (LPG paper).
      embedding_size: hidden width of the prediction embedding ``phi``.
    """

    kind: Literal["lpg", "ta_lpg"] = "lpg"
    prediction_size: int = field(default=8, metadata={"min": 1})
    hidden_size: int = field(default=256, metadata={"min": 1})
    cell: Literal["gru", "lstm"] = "gru"
    discount_input: bool = False
    embedding_size: int = field(default=16, metadata={"min": 1})

    @property
    def temporal(self) -> bool:
        return self.kind == "ta_lpg"


class LPGNetwork(nn.Module):
    """The LPG meta-network, one backward step at a time (see the module docstring)."""

    config: ObjectiveConfig

    def setup(self) -> None:
        c = self.config
        self.embed_hidden = nn.Dense(c.embedding_size)
        self.embed_out = nn.Dense(1)
        if c.cell == "gru":
            self.cell = nn.GRUCell(c.hidden_size)
        else:
            self.cell = nn.OptimizedLSTMCell(c.hidden_size)
        self.pi_head = nn.Dense(1)
        self.y_head = nn.Dense(c.prediction_size)

    def embed(self, prediction: jax.Array) -> jax.Array:
        """``phi(y)``: ``[..., m] -> [...]``."""
        return self.embed_out(nn.relu(self.embed_hidden(prediction)))[..., 0]

    def step(self, carry: Any, features: jax.Array) -> tuple[Any, tuple[jax.Array, jax.Array]]:
        """Advance the recurrence by one (backward) step: ``features [F] -> (pi_hat, y_hat)``."""
        carry, hidden = self.cell(carry, features)
        hidden = nn.relu(hidden)
        return carry, (self.pi_head(hidden)[0], nn.softmax(self.y_head(hidden)))

    def initial_carry(self) -> Any:
        zeros = jnp.zeros((self.config.hidden_size,))
        return zeros if self.config.cell == "gru" else (zeros, zeros)

    def __call__(self, prediction: jax.Array, features: jax.Array):
        """Touch every layer once (used only to initialise the parameters)."""
        self.embed(prediction)
        return self.step(self.initial_carry(), features)


def num_features(config: ObjectiveConfig) -> int:
    """Width of the per-step input: 5, plus the discount, plus progress and log lifetime."""
    return 5 + int(config.discount_input) + 2 * int(config.temporal)


def _features(network: LPGNetwork, params: Params, inputs: ObjectiveInputs) -> jax.Array:
    """Per-step inputs ``[T, F]`` of the meta-network."""
    embed = lambda y: network.apply(params, y, method=LPGNetwork.embed)
    not_terminated = 1.0 - inputs.terminated.astype(jnp.float32)
    columns = [
        inputs.reward,
        inputs.terminated.astype(jnp.float32),
        inputs.policy_prob,
        embed(inputs.prediction),
        embed(inputs.next_prediction) * not_terminated,
    ]
    horizon = inputs.reward.shape[0]
    scalars = []
    if network.config.discount_input:
        scalars.append(inputs.discount)
    if network.config.temporal:
        scalars += [inputs.progress, inputs.log_lifetime]
    columns += [jnp.broadcast_to(jnp.asarray(s, jnp.float32), (horizon,)) for s in scalars]
    return jnp.stack(columns, axis=-1)


@dataclass(frozen=True, eq=False)
class Objective:
    """A learned objective and how to initialise its parameters.

    Attributes:
      config: the network's shape.
      init: ``init(key) -> params``.
      apply: ``apply(params, inputs) -> ObjectiveTargets`` for one trajectory ``[T]``.
    """

    config: ObjectiveConfig
    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, ObjectiveInputs], ObjectiveTargets]

    def __call__(self, params: Params, inputs: ObjectiveInputs) -> ObjectiveTargets:
        return self.apply(params, inputs)


def make_objective(config: ObjectiveConfig | None = None) -> Objective:
    """Build the LPG (or TA-LPG) meta-network described by ``config``."""
    config = config or ObjectiveConfig()
    network = LPGNetwork(config)

    def init(key: jax.Array) -> Params:
        prediction = jnp.zeros((config.prediction_size,))
        features = jnp.zeros((num_features(config),))
        return network.init(key, prediction, features)

    def apply(params: Params, inputs: ObjectiveInputs) -> ObjectiveTargets:
        features = _features(network, params, inputs)
        initial = network.apply(params, method=LPGNetwork.initial_carry)

        def backward(carry, step):
            features_t, episode_end_t = step
            # The step after an episode's end belongs to another episode: forget it.
            carry = jax.tree.map(lambda c, c0: jnp.where(episode_end_t, c0, c), carry, initial)
            return network.apply(params, carry, features_t, method=LPGNetwork.step)

        _, (pi_hat, y_hat) = jax.lax.scan(
            backward, initial, (features, inputs.episode_end), reverse=True
        )
        return ObjectiveTargets(pi_hat=pi_hat, y_hat=y_hat)

    return Objective(config=config, init=init, apply=apply)
