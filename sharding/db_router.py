"""The Django database router: sharded models go to workers, and only to a named one."""
from typing import Any

from django.apps import apps
from django.db.models import Model

from .config import COORDINATOR_ALIAS
from .errors import UnroutedQueryError


def is_sharded(model: type[Model]) -> bool:
    """Sharded models carry a LogicalShardField; this also holds for migrations' historical models."""
    from .models import LogicalShardField

    return any(isinstance(field, LogicalShardField) for field in getattr(model._meta, "local_fields", ()))


class ShardRouter:
    def _route(self, model: type[Model], hints: dict[str, Any]) -> str:
        if not is_sharded(model):
            return COORDINATOR_ALIAS
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return instance._state.db
        # Falling back to `default` would read or write the wrong data silently.
        raise UnroutedQueryError(
            f"{model._meta.label} is sharded, so a query on it must name its node: "
            f"use .using(node_for_user(user_id)) or .using(node_for_id(id)) from sharding.placement"
        )

    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        return self._route(model, hints)

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return self._route(model, hints)

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        # Rows on different nodes can never reference each other through a foreign key.
        return obj1._state.db == obj2._state.db

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        on_worker = db != COORDINATOR_ALIAS
        if "sharded" in hints:
            return hints["sharded"] == on_worker
        if model_name is None:
            return not on_worker
        model = hints.get("model")
        if model is None:
            try:
                model = apps.get_model(app_label, model_name)
            except LookupError:
                return None
        return is_sharded(model) == on_worker
