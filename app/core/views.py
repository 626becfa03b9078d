from django.http import JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularSwaggerSplitView

from sharding.health import node_health
from sharding.moves import moves_overview
from sharding.recovery import in_doubt_transactions


@require_GET
def health(request):
    """200 when every node answers, 503 otherwise; same shape either way."""
    nodes = node_health()
    in_doubt = sum(len(found) for found in in_doubt_transactions().values() if found)
    healthy = all(node.ok for node in nodes)
    body = {
        "status": "ok" if healthy else "degraded",
        "nodes": [{"name": n.name, "role": n.role, "ok": n.ok, "latency_ms": n.latency_ms} for n in nodes],
        "in_doubt_transactions": in_doubt,
        "shard_moves": moves_overview(),
    }
    return JsonResponse(body, status=200 if healthy else 503)


class SwaggerUIView(SpectacularSwaggerSplitView):
    """Swagger UI at /api/docs/ with no inline script or style, so the site's Content-Security-Policy
    (script-src and style-src 'self') applies to it unchanged: the set-up script is this view's own
    /api/docs/?script response, the page's few styles a static file (app/templates/api/swagger_ui.html)."""

    template_name = "api/swagger_ui.html"
