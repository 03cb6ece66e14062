"""Environments behind one API (gymnax's): gymnax, brax, and Discovery's own."""

from discovery.envs.xla_flags import configure_xla_flags

configure_xla_flags()

from discovery.envs.compilation_cache import configure_compilation_cache  # noqa: E402

configure_compilation_cache()

from discovery.envs.distributed import join_distributed_job  # noqa: E402

join_distributed_job()  # before gymnax (imported below) starts the backend

from discovery.envs.gridworld import GridParams, GridState, GridWorld, make_layout, sample_level  # noqa: E402
from discovery.envs.registry import list_envs, make  # noqa: E402

__all__ = [
    "GridParams",
    "GridState",
    "GridWorld",
    "list_envs",
    "make",
    "make_layout",
    "sample_level",
]
