from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "app.wallet"
    label = "wallet"
