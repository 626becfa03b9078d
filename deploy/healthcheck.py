"""The image's health check: GET /health/ of the gunicorn in this container; exit status 0 when it answers 200.

/health/ is 503 while a node is down, so the container shows as unhealthy then too. The request names a host
the settings allow (the first of DJANGO_ALLOWED_HOSTS) and comes over plain HTTP from inside, which the
settings exempt from the HTTPS redirect.
"""
import os
import sys
import urllib.request

host = os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")[0].strip().lstrip(".")  # ".example.com": example.com
headers = {"Host": "localhost" if host == "*" else host}
request = urllib.request.Request("http://127.0.0.1:8000/health/", headers=headers)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:  # refused, timed out, or an HTTP error status (503 while a node is down)
    sys.exit(f"unhealthy: {exc}")
