"""The held-out summary of an objective run: the headline is the final reward rate
(defined for every seed), the final return comes with the seeds it covers, and
``summary.json`` is strict JSON."""

from __future__ import annotations

import json

import jax
import numpy as np

from discovery.agents.lpg_agent import LPGAgentConfig
from discovery.files import loads_strict
from discovery.lpg_task import LevelsConfig
from discovery.objective import ObjectiveConfig, make_objective
from discovery.objective_run import FinishedRun, write_objective_results
from discovery.objective_training import ObjectiveMetaTrainConfig


def test_held_out_summary_headlines_the_reward_rate_and_is_strict_json(tmp_path):
    # long_dense: no object ends an episode and the time limit is 2000 steps, so no
    # episode ends in a 4-update x 5-step lifetime: the final return is missing.
    config = ObjectiveMetaTrainConfig(
        name="summary",
        objective=ObjectiveConfig(prediction_size=4, hidden_size=8),
        agent=LPGAgentConfig(num_envs=4, rollout_len=5),
        levels=LevelsConfig(max_size=4, max_objects=1, held_out=("long_dense",)),
        eval_seeds=2,
        eval_lifetime=4,
    )
    objective = make_objective(config.objective)
    params = objective.init(jax.random.key(0))
    # A finished run's log in which no generation saw an episode end.
    records = [{"generation": g, "episode_return": None, "env_steps": 10 * (g + 1),
                "wall_time_s": 0.1} for g in range(2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = FinishedRun(tmp_path, objective, params, records)

    summary = write_objective_results(result, config)
    written = loads_strict((tmp_path / "summary.json").read_text())
    assert written == summary
    assert summary["curve_first_window"] is None  # missing, not NaN
    evaluation = summary["evaluation"]
    assert evaluation["headline"] == "reward_rate"
    for method in ("learned", "initial_objective", "a2c"):
        entry = evaluation[method]
        # The headline is the reward rate, finite on every seed...
        assert entry["mean"] == entry["reward_rate"]["mean"]
        assert entry["reward_rate"]["seeds_covered"] == [2]
        assert np.isfinite(entry["mean"][0]) and len(entry["per_seed"][0]) == 2
        # ...while no seed has a final return to report.
        assert entry["return"]["seeds_covered"] == [0]
        assert entry["return"]["mean"] == [None] and entry["return"]["per_seed"] == [[None] * 2]
