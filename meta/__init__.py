"""Meta-optimisers and curricula: ask / tell on pure state.

The parent package, ``discovery``, sets the XLA flags on import (through ``discovery.envs``),
before this one loads.
"""
