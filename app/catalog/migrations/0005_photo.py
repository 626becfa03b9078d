import sharding.models
from django.db import migrations, models

import sharding.operations


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0004_partner_feed'),
    ]

    operations = [
        migrations.CreateModel(
            name='Photo',
            fields=[
                ('id', sharding.models.ShardedIdField(primary_key=True, serialize=False)),
                ('user_id', models.BigIntegerField(db_index=True)),
                ('logical_shard', sharding.models.LogicalShardField(editable=False)),
                ('item_id', models.BigIntegerField()),
                ('position', models.SmallIntegerField(default=0)),
                ('image', models.CharField(max_length=255)),
                ('width', models.IntegerField()),
                ('height', models.IntegerField()),
                ('thumbnail', models.CharField(max_length=255)),
                ('thumbnail_width', models.IntegerField()),
                ('thumbnail_height', models.IntegerField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'indexes': [models.Index(fields=['item_id', 'position', 'id'], name='photo_item_order')],
                'constraints': [
                    models.CheckConstraint(condition=models.Q(('position__gte', 0)), name='photo_position_non_negative'),
                    models.CheckConstraint(condition=models.Q(('height__gt', 0), ('thumbnail_height__gt', 0), ('thumbnail_width__gt', 0), ('width__gt', 0)), name='photo_size_positive'),
                ],
            },
        ),
        sharding.operations.AssignShardedIds("catalog_photo"),
    ]
