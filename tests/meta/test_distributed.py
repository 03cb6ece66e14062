"""The multi-host path: `discover meta-train` as two local `jax.distributed` processes
gives the same metrics as one process."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from discovery.cli import main
from tests.resume import assert_records_close, logged_records
from tests.toys import TINY_META_TRAIN_FLAGS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




@pytest.mark.cross_program
@pytest.mark.timeout(400)
def test_two_processes_give_the_metrics_of_one(tmp_path, discover_script):
    port = _free_port()
    processes = []
    for process_id in range(2):
        env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(process_id))
        argv = [discover_script, "meta-train", "configs/lpo_cartpole.yaml", "--name", "run",
                "--runs-dir", str(tmp_path / f"process{process_id}"), *TINY_META_TRAIN_FLAGS]
        processes.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            pytest.fail("a jax.distributed process hung")
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    assert "process 1 of 2: done" in outputs[1]

    assert main(["meta-train", "configs/lpo_cartpole.yaml", "--name", "run",
                 "--runs-dir", str(tmp_path / "single"), *TINY_META_TRAIN_FLAGS]) == 0
    # Process 0 wrote the run; the population was scored half on each process, by
    # another compiled program than the whole population's: equal to float rounding.
    single = logged_records(tmp_path / "single" / "run")
    assert_records_close(logged_records(tmp_path / "process0" / "run"), single)
    assert not (tmp_path / "process1" / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("name, value", [("JAX_NUM_PROCESSES", "two"),
                                         ("JAX_PROCESS_ID", "-1")])
def test_a_bad_process_variable_is_named_before_joining(monkeypatch, name, value):
    from discovery.process_setup import join_distributed_job

    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}': allowed: a non-negative integer"):
        join_distributed_job()
