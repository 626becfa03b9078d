"""Settings that stop start-up: manage.py and app.wsgi print them as one line that says what to set."""


class StartupConfigError(Exception):
    """A setting is missing or wrong (for example production without DJANGO_SECRET_KEY); raised by app.settings."""
