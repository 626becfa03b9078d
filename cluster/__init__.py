"""Local sharded PostgreSQL cluster: a coordinator and N workers, each behind its own pgbouncer.

Run `python -m cluster --help`; the functions below are the same operations for tests and tools.
"""
from .config import ClusterError, cluster_dir, config_path, find_node, load_config
from .core import compact_ranges, destroy, down, kill_postmaster, start_node, status, stop_node, up, wait_for_exit
from .postgres import connect

__all__ = [
    "ClusterError", "cluster_dir", "compact_ranges", "config_path", "connect", "destroy", "down", "find_node",
    "kill_postmaster", "load_config", "start_node", "status", "stop_node", "up", "wait_for_exit",
]
