from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "app.web"
    label = "web"
    verbose_name = "Web pages"
