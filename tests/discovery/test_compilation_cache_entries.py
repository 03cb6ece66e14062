"""Compilation-cache entries land whole or not at all: a write cut short (``ulimit -f``)
leaves no truncated entry for later runs to warn about, and an entry that is damaged
anyway is dropped when read, then written anew."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jax._src import compilation_cache

from discovery.process_setup import make_cache_entries_atomic

REPO = Path(__file__).resolve().parents[2]
ENTRY = compilation_cache.compress_executable(b"an executable" * 1000)

# A file-size limit of 4 kB (as `ulimit -f 4`) for this process, then JAX's cache in
# the folder given, used the way a compile uses it.
LIMITED = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
import discovery
from jax._src import compilation_cache
cache = compilation_cache.LRUCache(sys.argv[1], max_size=-1)
try:
    cache.put("big", Path(sys.argv[2]).read_bytes())
except OSError as error:
    print("write failed:", error)
"""

# A real compile, under a file-size limit in bytes (0: none); with "strict", a warning
# (JAX warns when it cannot read a cache entry) fails the run.
COMPILE = """
import resource, sys, warnings
limit, strict = int(sys.argv[1]), sys.argv[2] == "strict"
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
if strict:
    warnings.filterwarnings("error", message=".*persistent compilation cache")
import discovery, jax, jax.numpy as jnp
print(float(jax.jit(lambda x: jnp.sin(x) * 3)(jnp.float32(0.5))))
"""


def _cache(folder: Path):
    assert make_cache_entries_atomic()
    return compilation_cache.LRUCache(str(folder), max_size=-1)


def test_an_entry_is_written_whole_with_no_temp_file_left(tmp_path):
    cache = _cache(tmp_path)
    cache.put("key", ENTRY)
    assert cache.get("key") == ENTRY
    assert os.listdir(tmp_path) == ["key-cache"]
    cache.put("key", b"other")  # as JAX: an existing entry is kept
    assert cache.get("key") == ENTRY


def test_a_truncated_entry_is_dropped_when_read_then_written_again(tmp_path):
    cache = _cache(tmp_path)
    for name, data in (("truncated", ENTRY[: len(ENTRY) // 2]), ("empty", b"")):
        (tmp_path / f"{name}-cache").write_bytes(data)
        assert cache.get(name) is None
        assert not (tmp_path / f"{name}-cache").exists()
        cache.put(name, ENTRY)
        assert cache.get(name) == ENTRY


def test_a_write_cut_short_by_a_file_size_limit_leaves_nothing(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(64 * 1024))  # incompressible: over the limit
    folder = tmp_path / "cache"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", LIMITED, str(folder), str(big)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "write failed: [Errno 27] File too large" in done.stdout
    assert os.listdir(folder) == []  # no truncated entry, no temp file


def test_a_run_whose_cache_writes_were_cut_short_leaves_later_runs_no_warning(tmp_path):
    env = {**os.environ, "DISCOVERY_COMPILATION_CACHE": str(tmp_path),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}

    def run(limit: int, strict: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", COMPILE, str(limit), strict], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)

    cut = run(1024, "")  # as `ulimit -f 1`: the cache's writes fail, the run does not
    assert cut.returncode == 0, cut.stderr
    assert "Error writing persistent compilation cache entry" in cut.stderr
    for name in os.listdir(tmp_path):  # whatever landed is whole
        compilation_cache.decompress_executable((tmp_path / name).read_bytes())
    assert not [name for name in os.listdir(tmp_path) if not name.endswith("-cache")]
    # The next runs read the cache (no entry to warn about), the first fills it.
    for _ in range(2):
        done = run(0, "strict")
        assert done.returncode == 0 and done.stdout == cut.stdout, done.stderr
    assert any(name.endswith("-cache") for name in os.listdir(tmp_path))
