"""Agents take their keys as arguments and never keep one in their state."""

from typing import Any

import jax


def assert_no_keys(state: Any) -> None:
    """Fail if any leaf of an agent's ``state`` is a PRNG key (typed or raw uint32[2])."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        name = jax.tree_util.keystr(path)
        assert not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key), f"{name} is a key"
        assert "key" not in name.lower(), f"{name} looks like a key"
