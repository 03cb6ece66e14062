"""`dpo-vs-ppo-brax`, Lu et al. (2022)'s own headline: its pieces, its Brax PPO settings,
and its verdict from records (no Brax agent trains here: the paper scale needs a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from discovery import reproduce

NAME = "dpo-vs-ppo-brax"


def test_the_claim_is_listed_with_the_papers_tasks_and_settings():
    assert NAME in reproduce.list_claims()
    module = reproduce.claim_module(NAME)
    names = [piece.name for piece in module.pieces("paper")]
    assert names == [f"brax/{task}/{drift}" for task in ("ant", "halfcheetah", "hopper",
                                                          "walker2d") for drift in ("ppo", "dpo")]
    _, seeds, fields = module.SCALES["paper"]
    assert seeds == 10 and fields["total_timesteps"] == 30_000_000
    assert (fields["num_envs"], fields["num_steps"], fields["gamma"]) == (2048, 5, 0.97)
    from discovery.agents.ppo import PPOConfig

    PPOConfig(**fields)  # every field is a PPO setting


def test_the_cpu_scale_says_why_it_cannot_test_the_claim():
    module = reproduce.claim_module(NAME)
    assert module.pieces("cpu") == []
    report = module.report({}, "cpu", [])
    assert report.verdict.startswith("untestable at this scale: precondition failed: Lu et "
                                     "al.'s Brax budget")
    assert "--scale paper` on a GPU" in report.verdict


@pytest.mark.parametrize("factor, verdict", [(0.5, "contradicted"), (1.2, "holds"),
                                             (1.0, "not supported")])
def test_the_paper_scale_verdict_over_paired_seeds(factor, verdict):
    module = reproduce.claim_module(NAME)
    rng = np.random.default_rng(0)
    records = {}
    for task in module.TASKS:
        ppo = 1000 + rng.normal(0, 100, 10)
        records[f"{task}/ppo"] = {"final_returns": list(ppo), "diverged": [False] * 10}
        records[f"{task}/dpo"] = {"final_returns": list(ppo * factor + rng.normal(0, 1, 10)),
                                  "diverged": [False] * 10}
    expected = [piece.name for piece in module.pieces("paper")]
    report = module.report(records, "paper", expected)
    assert report.verdict.split(":")[0] == verdict, report.verdict
    assert "paired t, df 9.0, 10 seeds per arm" in report.verdict
    del records["brax/ant/dpo"]
    assert module.report(records, "paper", expected).verdict.startswith("pending: 7 of 8")
