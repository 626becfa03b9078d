"""Production settings pass Django's deployment checklist without warnings."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _check_deploy(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "app.settings", **env},
    )


def test_production_settings_have_no_deploy_warnings():
    result = _check_deploy(
        MARKETPLACE_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="market.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_settings_are_flagged_by_the_deploy_check():
    # The same check must be able to fail: the development settings are not fit for production.
    result = _check_deploy(MARKETPLACE_ENV="development")
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr  # DEBUG on
