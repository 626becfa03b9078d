#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    from django.core.management import execute_from_command_line

    from app.core.startup import StartupConfigError
    from sharding.errors import ClusterConfigError

    try:
        execute_from_command_line(sys.argv)
    except (ClusterConfigError, StartupConfigError) as exc:
        # A missing or broken cluster config or setting is a set-up problem: one line, no traceback.
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
