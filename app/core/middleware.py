"""A data node that is down or unreachable is a 503 `try_again` on every page and endpoint, never a 500."""
from django.http import JsonResponse
from django.template.response import TemplateResponse

from app.core.error_codes import CommonErrorCode
from sharding.breaker import note_failure, retry_after_seconds, unavailable_nodes

from .errors import error_body


class NodeUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        note_failure(exception)
        nodes = unavailable_nodes(exception)
        if nodes is None:
            return None
        headers = {"Retry-After": str(retry_after_seconds())}
        if request.path.startswith(("/api/", "/health")):
            body = error_body(CommonErrorCode.TRY_AGAIN, "A data node is unavailable; try again shortly.",
                              {"nodes": nodes})
            return JsonResponse(body, status=503, headers=headers)
        response = TemplateResponse(request, "503.html", status=503, headers=headers)
        return response.render()
