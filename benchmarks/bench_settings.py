"""The app's settings as served by the load benchmark, plus a log line (with traceback) for every 5xx.

Production settings (MARKETPLACE_ENV=production, DEBUG off) send server errors nowhere
visible; the benchmark writes them to its gunicorn log so a failed request can be explained.
"""
from app.settings import *  # noqa: F401,F403
from app.settings import LOGGING

LOGGING = {**LOGGING, "loggers": {**LOGGING["loggers"], "django.request": {"handlers": ["console"], "level": "ERROR"}}}
