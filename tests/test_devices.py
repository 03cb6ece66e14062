"""One CPU device per core: the process setup's device count, and runs split over two
forced host devices giving one device's numbers, without the jaxlib 0.10 deadlock.

Each multi-device run is its own process (the suite itself computes on one device,
conftest.py), under a short timeout: before the initialiser fix, 3 of 4 two-device
PPO runs hung at 0% CPU (BENCHMARKS.md, "Both CPU cores").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from discovery.process_setup import (
    CPU_DEVICES_ENV,
    DEVICE_COUNT_FLAG,
    parse_cpu_devices,
    usable_cores,
)

COUNT = "import discovery, jax; print(jax.device_count())"


def _python(code: str, timeout: float = 150, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != CPU_DEVICES_ENV}
    # Drop any device count a parent wrote, so each case starts from the user's flags.
    environment["XLA_FLAGS"] = " ".join(
        flag for flag in environment.get("XLA_FLAGS", "").split()
        if not flag.startswith(DEVICE_COUNT_FLAG))
    environment.update(env)
    try:
        return subprocess.run([sys.executable, "-c", code], env=environment,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s (the batched-QR deadlock?): {code[:80]}")


def test_parse_cpu_devices():
    assert parse_cpu_devices("auto") == usable_cores()
    assert parse_cpu_devices("") == usable_cores()
    assert parse_cpu_devices(" 3 ") == 3
    for bad in ("0", "-1", "two", "1.5", "100000"):
        with pytest.raises(ValueError, match=rf"{CPU_DEVICES_ENV}='{bad}': allowed: 'auto'"):
            parse_cpu_devices(bad)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, str(usable_cores())),                                  # the default: every core
    ({CPU_DEVICES_ENV: "3"}, "3"),
    ({"XLA_FLAGS": f"{DEVICE_COUNT_FLAG}=2"}, "2"),             # the user's flag is kept
    ({"XLA_FLAGS": f"{DEVICE_COUNT_FLAG}=2", CPU_DEVICES_ENV: "1"}, "1"),  # asked wins
])
def test_import_sets_the_device_count(env, expected):
    out = _python(COUNT, **env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == expected


def test_taskset_narrows_the_default():
    if not hasattr(os, "sched_getaffinity") or not os.path.exists("/usr/bin/taskset"):
        pytest.skip("no CPU affinity here")
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c",
                          "from discovery.process_setup import usable_cores; "
                          "print(usable_cores())"], capture_output=True, text=True, timeout=60)
    assert out.stdout.split()[-1] == "1", out.stderr[-2000:]


def test_a_bad_device_count_is_refused_by_name(discover_script):
    out = _python(COUNT, **{CPU_DEVICES_ENV: "lots"})
    assert out.returncode != 0
    assert f"{CPU_DEVICES_ENV}='lots': allowed: 'auto' or an integer" in out.stderr
    cli = subprocess.run([discover_script, "--cpu-devices", "0", "envs"], capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode == 2
    assert cli.stderr.strip() == ("discover: error: --cpu-devices='0': allowed: 'auto' or an "
                                  "integer from 1 to 1024 (CPU devices to split the host into)")


TRAIN = textwrap.dedent("""
    import json, jax
    from discovery.agents.ppo import PPOConfig
    from discovery.train import TrainConfig, train_seeds
    ppo = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 6, update_epochs=2,
                    num_minibatches=2)
    config = TrainConfig(env="CartPole-v1", seeds=4, ppo=ppo)
    out = {"devices": jax.device_count()}
    for name, on_update in (("whole", None), ("chunked", lambda update: None)):
        result = train_seeds(config, on_update=on_update)
        out[name] = result.metrics["latest_return"].tolist()
        out[name + "_loss"] = result.metrics["actor_loss"].tolist()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def trained() -> dict[int, dict]:
    """The same 4-seed PPO run on one device and split over two, each in its process."""
    runs = {}
    for devices in (1, 2):
        out = _python(TRAIN, timeout=240, **{CPU_DEVICES_ENV: str(devices)})
        assert out.returncode == 0, out.stderr[-3000:]
        runs[devices] = json.loads(out.stdout.strip().splitlines()[-1])
        assert runs[devices]["devices"] == devices
    return runs


@pytest.mark.cross_program
def test_ppo_on_two_devices_gives_one_devices_numbers(trained):
    one, two = trained[1], trained[2]
    # Every seed is the same arithmetic on a batch of 2 instead of 4; XLA may reduce a
    # batch of another size in another order, so losses agree to float rounding.
    for name in ("whole", "chunked"):
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(two[name + "_loss"], one[name + "_loss"], rtol=1e-4,
                                   atol=1e-6)
    assert np.isfinite(np.asarray(one["whole"])[:, -1]).all()


HALVES = textwrap.dedent("""
    import jax
    from discovery import envs
    from discovery.agents.ppo import PPOConfig, make_train
    from discovery.drift import make_drift
    env, env_params = envs.make("CartPole-v1")
    ppo = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 2, update_epochs=1,
                    num_minibatches=1)
    drift = make_drift("ppo")
    train = jax.vmap(make_train(ppo, env, env_params, drift), in_axes=(0, None))
    keys = jax.random.split(jax.random.key(0), 8)
    # Two independent vmapped halves in one program: the concurrency-optimised scheduler
    # runs them at once, so their initialisers' QRs run at once.
    halves = jax.jit(lambda k, p: (train(k[:4], p)[1], train(k[4:], p)[1]))
    out = jax.block_until_ready(halves(keys, drift.init(jax.random.key(0))))
    print("done", float(out[0]["actor_loss"].sum()))
""")


def test_the_concurrency_optimised_scheduler_no_longer_hangs():
    flags = os.environ.get("XLA_FLAGS", "").split()
    flags = [flag for flag in flags if not flag.startswith(DEVICE_COUNT_FLAG)]
    out = _python(HALVES, timeout=150, XLA_FLAGS=" ".join(
        [*flags, "--xla_cpu_enable_concurrency_optimized_scheduler=true"]))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[0] == "done"
