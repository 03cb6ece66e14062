"""Environments behind one API (gymnax's): gymnax, brax, and Discovery's own."""

from discovery.envs.gridworld import GridParams, GridState, GridWorld, make_layout, sample_level
from discovery.envs.registry import list_envs, make

__all__ = [
    "GridParams",
    "GridState",
    "GridWorld",
    "list_envs",
    "make",
    "make_layout",
    "sample_level",
]
