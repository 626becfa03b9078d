from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "app.partners"
    label = "partners"
    verbose_name = "Partner stores"
