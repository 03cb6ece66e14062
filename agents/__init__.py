"""Inner-loop learners: pure init / act / update functions over flax dataclasses."""

from envs.xla_flags import configure_xla_flags

configure_xla_flags()
