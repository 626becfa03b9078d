from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "app.orders"
    label = "orders"
