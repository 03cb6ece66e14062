"""Import the package first, so its XLA flags (the jaxlib 0.10 CPU hang fix) are set
before any test module starts JAX's backend, with JAX's persistent compilation cache in
a fresh folder for this session: tests that rebuild the same program (every tiny
meta-training run builds its baselines anew) load it instead of compiling it again,
while the suite still starts cold, as on a fresh machine."""

import os
import tempfile

os.environ.setdefault(
    "DISCOVERY_COMPILATION_CACHE", tempfile.mkdtemp(prefix="discovery-tests-jax-cache-")
)

import envs  # noqa: E402, F401
