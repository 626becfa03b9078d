"""Errors raised by the routing layer. Each message says what to do about it."""
from collections.abc import Mapping


class ShardingError(Exception):
    """Base class for routing-layer errors."""


class ClusterConfigError(ShardingError):
    """The cluster config is missing or malformed; raised at start-up."""


class UnroutedQueryError(ShardingError):
    """A query on a sharded model named no node."""


class UnknownNodeError(ShardingError):
    """A node name that the cluster config does not define."""


class PlacementError(ShardingError):
    """The placement catalogue is missing or incomplete."""


class InvalidIdError(ShardingError, ValueError):
    """A value that is not a 64-bit sharded id."""


class InvalidCursorError(ShardingError, ValueError):
    """A keyset cursor that this layer did not produce."""


class FanOutError(ShardingError):
    """One or more nodes failed or timed out during a fan-out."""

    def __init__(self, failures: Mapping[str, BaseException]) -> None:
        # failures: {node name: exception}
        self.failures = dict(failures)
        detail = "; ".join(f"{node}: {exc}" for node, exc in sorted(self.failures.items()))
        super().__init__(f"fan-out failed on {', '.join(sorted(self.failures))} ({detail})")

    @property
    def nodes(self) -> list[str]:
        return sorted(self.failures)
