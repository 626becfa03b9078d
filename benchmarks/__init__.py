"""Benchmarks (make bench, bench-2pc, bench-round-trips, bench-search, bench-rebalance).

Every `python -m benchmarks.X` imports this package first, and the servers, management commands and
helpers it starts inherit its environment: benchmark users deposit far more than a real user may in a
day (load_prep gives each 100,000,000.00, Locust deposits all the time), so the daily deposit limit is
raised out of their way unless the caller sets one. Their management commands and helpers run with the
development settings (app.settings is production unless told); the load benchmark's servers
(run_bench.Server) run with production settings, with a secret key and hosts of their own.
"""
import os

os.environ.setdefault("DAILY_DEPOSIT_LIMIT", str(10**15))
os.environ.setdefault("MARKETPLACE_ENV", "development")

# Rate limits (app settings THROTTLE_RATE_<SCOPE>) so high that a benchmark never meets them: the throttles still
# count every request, so their cost is measured, but a 429 never replaces the work being measured.
UNTHROTTLED_ENV = {
    f"THROTTLE_RATE_{scope}": "100000000/min"
    for scope in ("LOGIN", "LOGIN_ADDRESS", "ANON", "USER", "REGISTER", "SEARCH", "DEPOSIT", "PURCHASE", "LISTING",
                  "PASSWORD_CHANGE", "PASSWORD_RESET")
}
