from django.apps import AppConfig


class ShardTestConfig(AppConfig):
    name = "tests.shardtest"
    label = "shardtest"
    default_auto_field = "django.db.models.BigAutoField"
