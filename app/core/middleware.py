"""Errors outside DRF's views answered as the API answers them (app.core.errors.error_response_for): a node that
is down, unreachable or too slow is a 503 `try_again` on every page and endpoint, never a 500, and a page link
whose cursor is not ours is a 400."""
from django.http import JsonResponse
from django.template.response import TemplateResponse

from .errors import ServiceError, error_response_for

PAGE_TEMPLATES = {400: "400.html", 503: "503.html"}


class ErrorResponseMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, ServiceError):
            return None  # the pages handle their business errors themselves
        known = error_response_for(exception)
        if known is None:
            return None
        status, body, headers = known
        if request.path.startswith(("/api/", "/health")):
            return JsonResponse(body, status=status, headers=headers)
        context = {"message": body["error"]["message"]}
        return TemplateResponse(request, PAGE_TEMPLATES[status], context, status=status, headers=headers).render()
