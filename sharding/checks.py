"""System checks of settings.SHARDING: a bad value fails `manage.py check` (and start-up) with what to change."""
import re
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

GID_PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}$")
NUMBERS = ("PLACEMENT_TTL", "FANOUT_TIMEOUT", "LOCK_TIMEOUT_MS", "RECOVERY_GRACE_SECONDS",
           "RECOVERY_INTERVAL_SECONDS", "BREAKER_PROBE_SECONDS", "REQUEST_DEADLINE_SECONDS")


@checks.register()
def check_sharding_settings(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    config = getattr(settings, "SHARDING", None)
    if not isinstance(config, dict):
        return [checks.Error("settings.SHARDING is missing or not a dict", id="sharding.E001")]
    problems: list[checks.CheckMessage] = []
    prefix = config.get("GID_PREFIX")
    # parse_gid splits gids on "_": a prefix containing one would make recovery skip every one of its own.
    if not isinstance(prefix, str) or not GID_PREFIX_PATTERN.match(prefix):
        problems.append(checks.Error(
            f"SHARDING['GID_PREFIX'] is {prefix!r}",
            hint="use 1 to 16 letters and digits, starting with a letter (no '_': gids are split on it)",
            id="sharding.E002",
        ))
    for name in NUMBERS:
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(checks.Error(f"SHARDING[{name!r}] is {value!r}", hint="use a number, 0 or more",
                                         id="sharding.E003"))
    shards = config.get("LOGICAL_SHARDS")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 8192:
        problems.append(checks.Error(f"SHARDING['LOGICAL_SHARDS'] is {shards!r}", hint="use 1 to 8192",
                                     id="sharding.E004"))
    return problems
