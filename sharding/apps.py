from django.apps import AppConfig


class ShardingConfig(AppConfig):
    name = "sharding"
    verbose_name = "Sharding"
    default_auto_field = "django.db.models.BigAutoField"
