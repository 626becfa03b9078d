"""Middleware of the routing layer.

FreshPlacementMiddleware: each web request routes by a placement at least as
new as the requests that finished before it began. After a shard moves, a
process whose cached map is a few seconds old would read the old worker's
copy; checking the version once per request (one coordinator query, and only
in requests that route) rules that out.

RequestDeadlineMiddleware: each request runs under a deadline
(sharding.deadline), so a slow node costs it a few seconds, never more.
"""
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .deadline import deadline_after
from .placement import check_placement_at_next_lookup


class FreshPlacementMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        check_placement_at_next_lookup()
        return self.get_response(request)


class RequestDeadlineMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with deadline_after(settings.SHARDING["REQUEST_DEADLINE_SECONDS"]):
            return self.get_response(request)
