"""The OpenAPI description (/api/schema/) covers the whole API, and its Swagger UI (/api/docs/) works offline."""
import re

import pytest
import requests
from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "/api/v1/"
MONEY_MOVERS = [("/api/v1/wallet/deposits", "post"), ("/api/v1/purchases", "post")]
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


@pytest.fixture(scope="module")
def document(live_server_url):
    response = requests.get(f"{live_server_url}/api/schema/", params={"format": "json"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def api_routes(patterns=None, prefix="/"):
    """{OpenAPI path: {methods}} of every URL pattern under /api/v1/, from Django's URL resolver."""
    routes = {}
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            routes.update(api_routes(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern) and route.startswith(API_PREFIX):
            view = pattern.callback.view_class
            routes[route] = {name for name in view.http_method_names if hasattr(view, name)} - {"options", "head"}
    return routes


def operations(document):
    return [(path, method, operation) for path, item in document["paths"].items() for method, operation in item.items()]


def test_schema_is_openapi_3_and_lists_every_api_route_with_its_methods(document):
    assert document["openapi"].startswith("3."), document["openapi"]
    assert document["info"]["title"] == "Marketplace API"
    expected = api_routes()
    assert {"/api/v1/items/{item_id}", "/api/v1/reports/platform"} <= set(expected), expected  # v1 and its reports
    described = {path: set(item) for path, item in document["paths"].items() if path.startswith(API_PREFIX)}
    assert described == expected


def test_every_api_operation_declares_a_4xx_with_the_error_shape(document):
    missing = []
    for path, method, operation in operations(document):
        if not path.startswith(API_PREFIX):
            continue
        errors = [
            status for status, response in operation["responses"].items()
            if status.startswith("4") and response.get("content") == ERROR_CONTENT
        ]
        if not errors:
            missing.append(f"{method.upper()} {path}")
    assert not missing, missing
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error"], error


@pytest.mark.parametrize("path, method", MONEY_MOVERS)
def test_money_movers_require_an_idempotency_key(document, path, method):
    headers = [p for p in document["paths"][path][method].get("parameters", []) if p["in"] == "header"]
    assert [(p["name"], p["required"]) for p in headers] == [("Idempotency-Key", True)]


def test_ids_and_money_are_strings(document):
    item = document["components"]["schemas"]["ItemOut"]["properties"]
    assert item["id"]["type"] == "string" and item["id"]["pattern"] == "^[0-9]+$"
    assert item["price"]["type"] == "string" and item["price"]["pattern"] == r"^-?[0-9]+\.[0-9]{2}$"
    assert document["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }


def test_swagger_ui_is_served_without_any_external_host(live_server_url):
    response = requests.get(f"{live_server_url}/api/docs/", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    assert not re.search(r"https?://", page), re.findall(r".{60}https?://.{60}", page)
    # The set-up script is the view's own ?script answer (no inline script: the Content-Security-Policy).
    script = requests.get(f"{live_server_url}/api/docs/?script=", timeout=30)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.text
    assert not re.search(r"https?://", script.text), re.findall(r".{60}https?://.{60}", script.text)
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets), assets
    for asset in assets:  # from the sidecar package, served by the dev server (DEBUG) or collectstatic
        assert requests.get(live_server_url + asset, timeout=30).status_code == 200, asset


RETRY_AFTER = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait before trying again."}


def test_every_api_operation_declares_a_429_with_retry_after(document):
    """Every endpoint is rate limited (app.core.throttling, the partner API per key): each says so."""
    missing = []
    for path, method, operation in operations(document):
        if not path.startswith("/api/"):
            continue
        response = operation["responses"].get("429")
        if (response is None or response.get("content") != ERROR_CONTENT or "`throttled`" not in response["description"]
                or response.get("headers", {}).get("Retry-After") != RETRY_AFTER):
            missing.append(f"{method.upper()} {path}: {response}")
    assert not missing, missing


def test_the_account_endpoints_are_described(document):
    paths = document["paths"]
    token = paths["/api/v1/auth/token"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    token_out = document["components"]["schemas"][token.rsplit("/", 1)[-1]]
    assert set(token_out["properties"]) == {"token", "expiry"}
    assert token_out["properties"]["expiry"]["format"] == "date-time"

    logout_all = paths["/api/v1/auth/logout-all"]["post"]
    assert "204" in logout_all["responses"] and "401" in logout_all["responses"]
    assert logout_all["security"] == [{"tokenAuth": []}, {"cookieAuth": []}]

    password = paths["/api/v1/auth/password"]["post"]
    body = password["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    body = document["components"]["schemas"][body]
    assert set(body["required"]) == {"old_password", "new_password"}
    assert set(password["responses"]) >= {"204", "400", "401", "429"}
    assert "`wrong_password`" in password["responses"]["400"]["description"]


def test_the_photo_endpoints_are_described(document):
    upload = document["paths"]["/api/v1/items/{item_id}/photos"]["post"]
    (content_type,) = upload["requestBody"]["content"]
    assert content_type == "multipart/form-data"
    schema = upload["requestBody"]["content"][content_type]["schema"]
    body = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert body["properties"]["image"] == {**body["properties"]["image"], "type": "string", "format": "binary"}
    assert body["required"] == ["image"]
    for status, code in [("400", "invalid_image"), ("400", "too_many_photos"), ("404", "not_found"),
                         ("409", "item_sold"), ("413", "request_too_large")]:
        assert f"`{code}`" in upload["responses"][status]["description"], (status, code)
    photo = document["components"]["schemas"]["PhotoOut"]
    assert set(photo["properties"]) == {"id", "url", "thumbnail_url", "width", "height", "position"}
    item = document["components"]["schemas"]["ItemOut"]
    assert item["properties"]["photos"]["items"] == {"$ref": "#/components/schemas/PhotoOut"}
    assert "204" in document["paths"]["/api/v1/items/{item_id}/photos/{photo_id}"]["delete"]["responses"]
    assert "200" in document["paths"]["/api/v1/items/{item_id}/photos/order"]["patch"]["responses"]
