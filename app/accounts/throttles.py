from rest_framework.throttling import SimpleRateThrottle


class LoginRateThrottle(SimpleRateThrottle):
    """Login attempts per username and client address, counted in the shared (database) cache.

    The API's token view uses it as a DRF throttle and the web login form calls
    allow_request itself, so both count against one limit: switching from one
    to the other gains no extra guesses.
    """

    scope = "login"

    def get_cache_key(self, request, view):
        # The API reads a JSON body (DRF's request.data); the web form posts fields (Django's request.POST).
        fields = request.data if hasattr(request, "data") else request.POST
        username = str(fields.get("username", "")).lower()[:150]
        return self.cache_format % {"scope": self.scope, "ident": f"{self.get_ident(request)}:{username}"}
