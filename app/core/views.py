import hashlib
import hmac

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularSwaggerSplitView

from sharding.health import node_health
from sharding.moves import moves_overview
from sharding.recovery import in_doubt_transactions


def sees_health_details(request):
    """Staff (a logged-in session) and monitoring that sends `Authorization: Bearer <HEALTH_MONITORING_TOKEN>`
    (compared in constant time; no token configured means no bearer is accepted)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    expected = settings.HEALTH_MONITORING_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not sent.strip():
        return False
    # Digests of equal length: the comparison tells nothing, not even the token's length.
    return hmac.compare_digest(
        hashlib.sha256(sent.strip().encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


@never_cache
@require_GET
def health(request):
    """200 when every node answers, 503 otherwise. Everyone sees `status`; the nodes (names, latencies), in-doubt
    transactions and shard moves only staff and monitoring with the token (they map the cluster for an attacker)."""
    nodes = node_health()
    healthy = all(node.ok for node in nodes)
    body = {"status": "ok" if healthy else "degraded"}
    if sees_health_details(request):
        body.update(
            nodes=[{"name": n.name, "role": n.role, "ok": n.ok, "latency_ms": n.latency_ms} for n in nodes],
            in_doubt_transactions=sum(len(found) for found in in_doubt_transactions().values() if found),
            shard_moves=moves_overview(),
        )
    return JsonResponse(body, status=200 if healthy else 503)


class SwaggerUIView(SpectacularSwaggerSplitView):
    """Swagger UI at /api/docs/ with no inline script or style, so the site's Content-Security-Policy
    (script-src and style-src 'self') applies to it unchanged: the set-up script is this view's own
    /api/docs/?script response, the page's few styles a static file (app/templates/api/swagger_ui.html)."""

    template_name = "api/swagger_ui.html"
