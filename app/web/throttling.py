"""Rate limits for the pages: the API's throttles (app.core.throttling), so a page and its endpoint share a count."""
from functools import wraps

from django.shortcuts import render

from app.core.throttling import wait_for


def too_many_requests(request, seconds):
    response = render(request, "429.html", {"seconds": seconds}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def throttled(*throttles, methods=("POST",)):
    """A view decorator: each request with one of `methods` counts against every throttle (factories: called per
    request); over a limit, the site's 429 page with Retry-After instead of the view."""

    def decorator(view):
        @wraps(view)
        def throttled_view(request, *args, **kwargs):
            if request.method in methods:
                seconds = wait_for(request, [make() for make in throttles])
                if seconds is not None:
                    return too_many_requests(request, seconds)
            return view(request, *args, **kwargs)

        return throttled_view

    return decorator
