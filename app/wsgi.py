import os
import sys

from django.core.wsgi import get_wsgi_application

from app.core.startup import StartupConfigError
from sharding.errors import ClusterConfigError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
try:
    application = get_wsgi_application()
except (ClusterConfigError, StartupConfigError) as exc:  # one line that says what to set, not a traceback
    sys.exit(f"error: {exc}")
