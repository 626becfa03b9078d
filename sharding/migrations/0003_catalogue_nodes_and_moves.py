from django.db import migrations, models

import sharding.fencing
import sharding.operations


class Migration(migrations.Migration):

    dependencies = [
        ("sharding", "0002_transaction_decision"),
    ]

    operations = [
        migrations.AddField(model_name="node", name="host", field=models.CharField(default="", max_length=255)),
        migrations.AddField(model_name="node", name="port", field=models.IntegerField(null=True)),
        migrations.AddField(model_name="node", name="bouncer_port", field=models.IntegerField(null=True)),
        migrations.AddField(
            model_name="node", name="state",
            field=models.CharField(choices=[("active", "active"), ("draining", "draining")], default="active", max_length=16),
        ),
        migrations.CreateModel(
            name="ShardMove",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("shard", models.IntegerField()),
                ("source", models.CharField(max_length=63)),
                ("target", models.CharField(max_length=63)),
                ("state", models.CharField(choices=[(s, s) for s in (
                    "pending", "copying", "catching_up", "fencing", "switched", "cleaning", "done", "aborting", "aborted"
                )], default="pending", max_length=16)),
                ("rows_total", models.BigIntegerField(default=0)),
                ("rows_copied", models.BigIntegerField(default=0)),
                ("lag_bytes", models.BigIntegerField(null=True)),
                ("write_pause_ms", models.FloatField(null=True)),
                ("error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("copy_started_at", models.DateTimeField(null=True)),
                ("switched_at", models.DateTimeField(null=True)),
                ("finished_at", models.DateTimeField(null=True)),
            ],
            options={
                "db_table": "sharding_shard_move",
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("state__in", ["done", "aborted"]), _negated=True),
                        fields=("shard",), name="shard_move_one_unfinished",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("source", models.F("target")), _negated=True), name="shard_move_to_another_node"
                    ),
                ],
            },
        ),
        migrations.RunSQL(sharding.fencing.WORKER_SQL, sharding.fencing.DROP_WORKER_SQL, hints=sharding.operations.ON_WORKERS),
    ]
