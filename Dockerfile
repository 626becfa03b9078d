# The marketplace app: gunicorn serving app.wsgi on port 8000. The same image runs `manage.py migrate_cluster`
# and `manage.py maintenance` (give them as the command). docker-compose.citus.yml runs it on Citus; without
# Citus it points at an existing cluster of our own engine (README, "Deployment").

# Chart.js at package-lock.json's version: the pages serve it themselves (no CDN).
FROM node:20-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# The app's packages only (requirements-prod.txt: no tests, no lint), in a virtualenv the last stage copies.
FROM python:3.11-slim-bookworm AS packages
COPY requirements-prod.txt /tmp/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-prod.txt

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEDIA_ROOT=/data/media
RUN useradd --system --uid 10001 --user-group --no-create-home app \
    && mkdir -p /data/media \
    && chown app:app /data/media
WORKDIR /app
COPY --from=packages /opt/venv /opt/venv
COPY manage.py ./
COPY app ./app
COPY sharding ./sharding
COPY deploy ./deploy
COPY --from=assets /build/node_modules/chart.js/dist ./node_modules/chart.js/dist
# Static files are collected once, here, and WhiteNoise serves them. Loading the settings needs a secret key,
# hosts and a cluster: throwaway values, since collectstatic connects to no database.
RUN MARKETPLACE_ENV=production DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    CLUSTER_COORDINATOR_URL=postgresql://collectstatic@localhost/none \
    python manage.py collectstatic --noinput --verbosity 0
USER app
EXPOSE 8000
# For the web server only: a container running migrate_cluster or maintenance turns it off (compose does).
HEALTHCHECK --interval=15s --timeout=6s --start-period=20s --retries=3 CMD ["python", "deploy/healthcheck.py"]
CMD ["gunicorn", "app.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "2", \
     "--access-logfile", "-"]
