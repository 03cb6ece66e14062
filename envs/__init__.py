"""Environments behind one API (gymnax's): gymnax, brax, and Discovery's own."""

from envs.xla_flags import configure_xla_flags

configure_xla_flags()

from envs.registry import list_envs, make  # noqa: E402

__all__ = ["list_envs", "make"]
