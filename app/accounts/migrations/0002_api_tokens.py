import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


ON_COORDINATOR = {"sharded": False}
ON_WORKERS = {"sharded": True}


class Migration(migrations.Migration):
    """API tokens move from DRF's authtoken (plain-text keys, one per user, no expiry) to knox tokens.

    The old keys are not carried over: they were readable by anyone who could read the table or a backup,
    so they stop working and their table goes; clients log in again. The authtoken app's migration records
    go too, as `migrate authtoken zero` would have removed them, so adding that app back would start afresh.
    """

    dependencies = [
        ('accounts', '0001_case_insensitive_identity'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuthToken',
            fields=[
                ('digest', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('token_key', models.CharField(db_index=True, max_length=25)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('expiry', models.DateTimeField(blank=True, null=True)),
                ('client', models.CharField(blank=True, help_text='The User-Agent of the login that made it.', max_length=200)),
                ('last_used', models.DateTimeField(blank=True, help_text='Recorded at most once a minute.', null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='auth_token_set', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['expiry'], name='accounts_token_expiry')],
            },
        ),
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", migrations.RunSQL.noop, hints=ON_COORDINATOR),
        migrations.RunSQL("DELETE FROM django_migrations WHERE app = 'authtoken'", migrations.RunSQL.noop,
                          hints=ON_COORDINATOR),
        migrations.RunSQL("DELETE FROM django_migrations WHERE app = 'authtoken'", migrations.RunSQL.noop,
                          hints=ON_WORKERS),
    ]
