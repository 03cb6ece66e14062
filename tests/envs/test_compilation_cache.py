"""The persistent compilation cache: on by default, configurable, off on request."""

import os
import subprocess
import sys

import pytest

PROBE = "import envs, jax; print(jax.config.jax_compilation_cache_dir, " \
        "jax.config.jax_enable_compilation_cache)"


def _probe(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DISCOVERY_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    clean.update({"XDG_CACHE_HOME": str(tmp_path / "xdg"), **env})
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("setting, expected", [
    (None, ("xdg/discovery/jax", "True")),
    ("{tmp}/mine", ("mine", "True")),
    ("off", ("None", "False")),
])
def test_cache_folder_follows_the_setting(tmp_path, setting, expected):
    env = {} if setting is None else {
        "DISCOVERY_COMPILATION_CACHE": setting.format(tmp=tmp_path)}
    folder, enabled = _probe(tmp_path, **env)
    assert folder.endswith(expected[0]) and enabled == expected[1]


def test_a_folder_given_to_jax_is_kept(tmp_path):
    folder, _ = _probe(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-own"))
    assert folder == str(tmp_path / "jax-own")
