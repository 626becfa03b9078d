"""Named failpoints, so tests can crash the coordinating code at exact moments.

Unset, a failpoint costs one dict lookup. They can only be switched on where
settings.SHARDING["FAILPOINTS"] is true (the test settings), never in
production. A subprocess can arm them through the environment:
SHARDING_FAILPOINTS="after_decision=exit,between_commits=raise".
"""
import os
import random
from collections.abc import Callable
from typing import cast

from django.conf import settings

# The PREPAREs and COMMIT PREPAREDs go out all at once (sharding.transactions): these two fire, on the pool
# thread of every participant but the first, as the first's is under way and before that participant's is sent.
AFTER_FIRST_PREPARE = "after_first_prepare"
BEFORE_DECISION = "before_decision"
AFTER_DECISION = "after_decision"
BETWEEN_COMMITS = "between_commits"
# A shard move's steps (sharding.moves.STEPS), each armed as move_<step>.
MOVE_STEPS = ("announced", "published", "subscribed", "copied", "fenced", "marked", "owned", "switched",
              "released", "unsubscribed")
NAMES = (AFTER_FIRST_PREPARE, BEFORE_DECISION, AFTER_DECISION, BETWEEN_COMMITS)  # the two-phase commit's
KNOWN = (*NAMES, *(f"move_{step}" for step in MOVE_STEPS))

EXIT_CODE = 70
# "raise", "exit" or a callable to run
Action = str | Callable[[], object]
_armed: dict[str, tuple[Action, float]] = {}


class FailpointError(RuntimeError):
    """Raised by a failpoint armed with the `raise` action."""


def arm(name: str, action: Action = "raise", probability: float = 1.0) -> None:
    """Arm a failpoint. action: "raise", "exit" (os._exit, a real crash) or a callable."""
    if not settings.SHARDING.get("FAILPOINTS"):
        raise RuntimeError("failpoints are disabled in these settings")
    if name not in KNOWN:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(KNOWN)}")
    if action not in ("raise", "exit") and not callable(action):
        raise ValueError(f"unknown failpoint action {action!r}")
    _armed[name] = (action, probability)


def disarm_all() -> None:
    _armed.clear()


def arm_from_environment() -> None:
    spec = os.environ.get("SHARDING_FAILPOINTS", "")
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        arm(name, action or "raise")


def failpoint(name: str) -> None:
    if not _armed:
        return
    armed = _armed.get(name)
    if armed is None:
        return
    action, probability = armed
    if probability < 1.0 and random.random() >= probability:
        return
    if action == "exit":
        os._exit(EXIT_CODE)
    if action == "raise":
        raise FailpointError(f"failpoint {name}")
    cast(Callable[[], object], action)()  # arm() lets only "raise", "exit" or a callable in
