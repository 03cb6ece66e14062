"""The persistent compilation cache: on by default, configurable, off on request."""

import os
import subprocess
import sys

import jax
import pytest

from discovery.process_setup import configure_compilation_cache

PROBE = "import discovery, jax; print(jax.config.jax_compilation_cache_dir, " \
        "jax.config.jax_enable_compilation_cache, " \
        "jax.config.jax_persistent_cache_min_compile_time_secs)"
MIN_TIME = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
SETTINGS = ("jax_compilation_cache_dir", "jax_enable_compilation_cache",
            "jax_persistent_cache_min_compile_time_secs")


def test_importing_the_package_turns_the_cache_on_in_the_user_cache_folder(tmp_path):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DISCOVERY_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR", MIN_TIME)}
    clean["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.split() == [str(tmp_path / "xdg" / "discovery" / "jax"), "True", "0.5"]
    # JAX's own minimum compile time, when the user set it, is kept (the suite sets 0).
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, MIN_TIME: "0"},
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[2] == "0.0"


@pytest.fixture
def jax_cache_settings():
    """This process's cache settings, put back after the test changed them."""
    saved = {name: getattr(jax.config, name) for name in SETTINGS}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


@pytest.mark.parametrize("setting, expected", [
    (None, ("xdg/discovery/jax", True)),
    ("{tmp}/mine", ("mine", True)),
    ("off", (None, False)),
])
def test_cache_folder_follows_the_setting(tmp_path, monkeypatch, jax_cache_settings,
                                          setting, expected):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if setting is None:
        monkeypatch.delenv("DISCOVERY_COMPILATION_CACHE", raising=False)
    else:
        monkeypatch.setenv("DISCOVERY_COMPILATION_CACHE", setting.format(tmp=tmp_path))
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_enable_compilation_cache", True)
    folder = configure_compilation_cache()
    if expected[0] is None:
        assert folder is None
    else:
        assert str(folder).endswith(expected[0])
        assert jax.config.jax_compilation_cache_dir == str(folder)
    assert jax.config.jax_enable_compilation_cache is expected[1]


def test_a_folder_given_to_jax_is_kept(tmp_path, monkeypatch, jax_cache_settings):
    monkeypatch.delenv("DISCOVERY_COMPILATION_CACHE", raising=False)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax-own"))
    assert configure_compilation_cache() == tmp_path / "jax-own"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jax-own")
