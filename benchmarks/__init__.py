# Rate limits (app settings THROTTLE_RATE_<SCOPE>) so high that a benchmark never meets them: the throttles still
# count every request, so their cost is measured, but a 429 never replaces the work being measured.
UNTHROTTLED_ENV = {
    f"THROTTLE_RATE_{scope}": "100000000/min"
    for scope in ("LOGIN", "LOGIN_ADDRESS", "ANON", "USER", "REGISTER", "SEARCH", "DEPOSIT", "PURCHASE", "LISTING",
                  "PASSWORD_CHANGE", "PASSWORD_RESET")
}
