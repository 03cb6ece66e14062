"""Inner-loop learners: pure init / act / update functions over flax dataclasses.

The parent package, ``discovery``, sets the XLA flags on import (through ``discovery.envs``),
before this one loads.
"""
