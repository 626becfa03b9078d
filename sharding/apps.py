from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class ShardingConfig(AppConfig):
    name = "sharding"
    verbose_name = "Sharding"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the settings checks
        from .deadline import install_statement_guard

        post_migrate.connect(_fence_sharded_tables, sender=self)
        connection_created.connect(install_statement_guard, dispatch_uid="sharding.deadline")


def _fence_sharded_tables(using: str, **kwargs: Any) -> None:
    """After `migrate` on a worker: every sharded table gets its fence (sharding.fencing)."""
    from .config import COORDINATOR_ALIAS
    from .fencing import install_fences

    if using != COORDINATOR_ALIAS:
        install_fences(using)
