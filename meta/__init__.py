"""Meta-optimisers and curricula: ask / tell on pure state."""

from envs.xla_flags import configure_xla_flags

configure_xla_flags()
