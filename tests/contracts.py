"""The pipeline's contract (run by tests/test_contracts_es.py and
tests/test_contracts_metagrad.py, one file per meta-optimiser so the two halves run on
different test workers), over the registries: every registered component x every
meta-optimiser x every curriculum that the config allows runs two generations at toy
size, resumes exactly after a kill, writes its results (with the component's own
evaluation on fresh seeds) and goes into the zoo; what the zoo holds is evaluated held
out against the component's hand-designed baselines. Combinations a config refuses are
refused with a reason (tests/meta/test_loop.py checks the messages).

Held-out evaluation reads only the zoo entry (the component's recipe and params): its
programs are the same whichever meta-optimiser and curriculum found the params, so it
runs once per component, on the ES + DR run, which keeps the suite's time down."""

from __future__ import annotations

import numpy as np

from discovery.components import COMPONENTS
from discovery.config import save_config
from discovery.evaluate import EvaluateConfig
from discovery.zoo import export_run, load
from tests.resume import killed_and_resumed, logged_records
from tests.toys import TOY_CURRICULA, toy_config

OPTIMIZERS = ("es", "metagrad")
HELD_OUT_ON = ("es", "dr")


def _combinations() -> list[tuple[str, str, str]]:
    allowed = []
    for component in COMPONENTS:
        for optimizer in OPTIMIZERS:
            for curriculum in TOY_CURRICULA:
                try:
                    toy_config(component, optimizer, curriculum)
                except ValueError:
                    continue
                allowed.append((component, optimizer, curriculum))
    return allowed


COMBINATIONS = _combinations()


def check_contract(component: str, optimizer: str, curriculum: str, tmp_path) -> None:
    """Two generations at toy size, killed and resumed exactly, results written, exported
    to the zoo, and (on ES + DR) evaluated held out."""
    config = toy_config(component, optimizer, curriculum)
    entry = COMPONENTS[component]
    entry.check_meta_train(config)
    _, resumed = killed_and_resumed(config, tmp_path, stop_after=1)
    records = logged_records(tmp_path / "straight")
    assert [r["generation"] for r in records] == [0, 1]
    if optimizer == "es":
        assert all(r["num_nonfinite"] == 0 for r in records)
        if curriculum != "none":
            # ES trains whole lifetimes: every generation's levels finish and are scored.
            assert all(r["levels_finished"] > 0 for r in records)
            if curriculum == "plr":
                assert records[-1]["curriculum_fill"] > 0
            if curriculum == "alp_gmm":
                assert records[-1]["curriculum_tasks"] > 0
    else:
        assert all(r["nonfinite_chunks"] == 0 and np.isfinite(r["grad_norm"])
                   for r in records)

    run = tmp_path / "killed"
    summary = entry.write_results(resumed, config)
    assert summary["component"] == component and summary["optimizer"] == optimizer
    assert (run / entry.params_file).exists()

    save_config(config, run / "config.yaml")
    zoo_entry = load(export_run(run, f"toy-{component}", zoo_dir=tmp_path / "zoo"))
    assert zoo_entry.kind == component
    if (optimizer, curriculum) != HELD_OUT_ON:
        return
    held_out = entry.held_out(zoo_entry, EvaluateConfig(seeds=2, horizons=(1.0,)))
    assert held_out.env_names and list(held_out.results) == [1.0]
    for env in held_out.env_names:
        methods = held_out.results[1.0][env]
        assert len(methods) >= 2, "the learned component and at least one baseline"
        for curves in methods.values():
            assert curves.final.shape == (2,)
