"""The Citus engine's parts that need no Citus: the layout of the sharded tables (sharding.citus), checked from the
models, and the cluster tool's answer when the extension is missing."""
import pytest
from django.apps import apps
from django.db.models import UniqueConstraint

from cluster import citus
from cluster.config import ClusterError
from sharding.citus import UNIQUE_RATIONALE, _with_column
from sharding.db_router import is_sharded


def _unique_names(model):
    names = [c.name for c in model._meta.constraints if isinstance(c, UniqueConstraint)]
    table = model._meta.db_table
    names += [f"{table}_{f.column}_key" for f in model._meta.local_fields if f.unique and not f.primary_key]
    return names


def test_every_unique_constraint_of_a_sharded_model_says_why_logical_shard_may_join_it():
    """Citus needs the distribution column in every unique constraint; appending it must not change its meaning."""
    names = {name for model in apps.get_models() if is_sharded(model) and model._meta.app_label != "shardtest"
             for name in _unique_names(model)}
    assert names == set(UNIQUE_RATIONALE)


def test_the_distribution_column_is_appended_inside_the_column_list():
    assert _with_column("UNIQUE (user_id, key)") == "UNIQUE (user_id, key, logical_shard)"
    assert _with_column("CREATE UNIQUE INDEX i ON public.t USING btree (a, lower((b)::text)) WHERE (x > 0)") == (
        "CREATE UNIQUE INDEX i ON public.t USING btree (a, lower((b)::text), logical_shard) WHERE (x > 0)"
    )


def test_citus_engine_without_the_extension_is_one_line_saying_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(citus, "extension_dirs", lambda bindir: [tmp_path])
    with pytest.raises(ClusterError) as raised:
        citus.require_extension(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and "github.com/citusdata/citus" in message
