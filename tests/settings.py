"""Settings for the test suite: the app's, on the `test` cluster, plus a small sharded app used to test the routing
layer."""
import os

os.environ.setdefault("CLUSTER_NAME", "test")
# Production is the default of app.settings; the tests (and the servers and commands they start) run as development.
os.environ["MARKETPLACE_ENV"] = "development"
# Photos of the test cluster in a folder of their own, the same for the tests and the servers they start.
import tempfile  # noqa: E402

os.environ.setdefault(
    "MEDIA_ROOT", os.path.join(tempfile.gettempdir(), f"marketplace-media-{os.environ['CLUSTER_NAME']}")
)
# The suite makes many requests quickly from one address: limits high enough never to be met, except the
# per-username login limit, whose default (10 a minute) tests check. Throttle tests set low rates themselves.
for _scope in ("LOGIN_ADDRESS", "PASSWORD_CHANGE", "PASSWORD_RESET", "ANON", "USER", "REGISTER", "SEARCH", "DEPOSIT",
               "PURCHASE", "LISTING", "PHOTO"):
    os.environ.setdefault(f"THROTTLE_RATE_{_scope}", "100000/min")

from app.settings import *  # noqa: E402,F403 - the test settings extend the app's, read after the environment above
from app.settings import INSTALLED_APPS, SHARDING  # noqa: E402 - extended below, read after the environment above

INSTALLED_APPS = [*INSTALLED_APPS, "tests.shardtest"]

# Failpoints on; a placement is trusted for half a second, so a shard move announces itself quickly.
# A failed node is probed every 0.2 s, so a test that restarts one gets it back at once.
# A request's deadline is generous: 20 threads hashing passwords on 2 shared cores can take longer than the 4 s of
# production without any node being slow (tests/test_request_deadline.py sets its own).
SHARDING = {**SHARDING, "FAILPOINTS": True, "PLACEMENT_TTL": 0.5, "BREAKER_PROBE_SECONDS": 0.2,
            "REQUEST_DEADLINE_SECONDS": 30}

# Tests deposit large amounts (a million at once, many times a day): the daily limit is out of their way,
# except in tests/test_deposit_limit.py, which sets its own.
DAILY_DEPOSIT_LIMIT = int(os.environ.get("DAILY_DEPOSIT_LIMIT", str(10**15)))

# The webhook tests deliver to receivers on 127.0.0.1 (tests/test_webhook_addresses.py turns this off).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True

# /health/ shows its details to this token (tests/marketplace/test_flow.py asks the live server with it).
HEALTH_MONITORING_TOKEN = os.environ.get("HEALTH_MONITORING_TOKEN", "health-token-of-the-test-suite")
