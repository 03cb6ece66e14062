"""Inner-loop learners: pure init / act / update functions over flax dataclasses.

The parent package, ``discovery``, sets the XLA flags on import, before this one loads.
"""
