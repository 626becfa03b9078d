"""The API answers as its OpenAPI description says: Schemathesis generates requests from /api/schema/ for each
operation, valid ones and invalid ones, and runs every check it has on the answers (no 5xx; documented status,
content type, headers and body; what the description allows is accepted and what it forbids refused; required
headers, methods, authentication), over HTTP on a live server, logged in as a fresh user. Bounded and
derandomized: the same cases every run (SCHEMATHESIS_EXAMPLES per operation and mode mix, 15 by default).

Not schemathesis.pytest.from_fixture (the way to load a schema from a fixture): its lazy loader reads a private
attribute that pytest 9 no longer has (4.32.5). The operations are listed at collection from the same generator
that serves /api/schema/, and each test draws its cases from the live schema's operation.
"""
import io
import os
import uuid
from types import SimpleNamespace

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

load_all_checks()


def _png():
    out = io.BytesIO()
    Image.new("RGB", (120, 120), (40, 90, 200)).save(out, "PNG")
    return out.getvalue()


PNG = _png()
# Every check Schemathesis has (`--checks all`): server errors, status codes, content types, headers and bodies
# as described, invalid data rejected, valid data accepted, required headers, unsupported methods, Allow
# headers, authentication that is not ignored, and its stateful checks (no-ops for single requests).
CHECKS_ALL = CHECKS.get_all()
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))
SKIPPED = {"auth_logout_create"}  # it would revoke the token the other cases use
_POSITIVE = CHECKS.get_one("positive_data_acceptance")
# Rules OpenAPI cannot express, each said in the operation's description; only that check is left out there.
EXCLUDED = {
    # `from` and `to` at most 3660 days apart, and `from` not after `to` (nor after today without `to`).
    **{f"reports_{name}_retrieve": [_POSITIVE] for name in ("platform", "purchases", "sales", "transactions")},
    # Django's password validators: not too common, not all digits, not like the username or the email.
    "auth_register_create": [_POSITIVE],
    # The old password must be the user's own (generated data never is), the new one pass those validators.
    "auth_password_create": [_POSITIVE],
    # `min_price` not above `max_price`; `sort=relevance` needs a `q` with some text.
    "listings_list": [_POSITIVE],
    # The ids must be exactly those of the item's photos.
    "items_photos_order_partial_update": [_POSITIVE],
}
# The photo endpoints act on an item of the test's user: their positive cases name a fresh one (a generated id
# names none, which would only ever test the 404), and upload a real image, which a schema cannot generate.
PHOTO_OPERATIONS = {"items_photos_create", "items_photos_destroy", "items_photos_order_partial_update"}


def drops_authorization(case):
    """A negative case made by leaving out (or breaking) the Authorization header: it is sent as generated,
    without the test's credentials, which would make it a valid request again."""
    phase = case.meta.phase if case.meta is not None else None
    mutations = getattr(getattr(phase, "data", None), "mutations", None) or ()
    return any(
        mutation.parameter_location.value == "header" and (mutation.parameter or "").lower() == "authorization"
        for mutation in mutations
    )


def with_a_real_item(case, operation_id, new_item):
    """Positive cases of the photo endpoints: the path names an item of the user (with a photo, for the order
    and the delete), and an upload sends a real PNG (Schemathesis makes bytes that are no image), passed as the
    request's own file so that the case stays the positive one it was generated as. Returns (case, extra
    arguments of the request). Negative cases are sent as generated."""
    if operation_id not in PHOTO_OPERATIONS or case.meta is None or not case.meta.generation.mode.is_positive:
        return case, {}
    item_id, photo_id = new_item()
    case.path_parameters["item_id"] = str(item_id)
    if operation_id == "items_photos_destroy":
        case.path_parameters["photo_id"] = str(photo_id)
    if operation_id == "items_photos_order_partial_update" and isinstance(case.body, dict):
        case.body = {**case.body, "photo_ids": [str(photo_id)]}
    if operation_id == "items_photos_create":
        return case, {"files": {"image": ("photo.png", PNG, "image/png")}}
    return case, {}


def as_a_client_would(case):
    """Positive cases send what a client may send but a schema cannot say: a fresh Idempotency-Key (reusing one
    with other parameters is a 422, by design), and no made-up `cursor` (cursors are opaque: only a `next` the
    API handed out is one; paging with real ones is tested in the list endpoints' own tests). Negative cases
    are sent as generated."""
    if case.meta is not None and case.meta.generation.mode.is_positive:
        if case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = f"st-{uuid.uuid4().hex}"
        if case.query and "cursor" in case.query:
            del case.query["cursor"]
    return case


def operation_ids():
    document = SchemaGenerator().get_schema(public=True)
    return sorted(operation["operationId"] for item in document["paths"].values() for operation in item.values())


@pytest.fixture(scope="module")
def api_schema(live_server_url):
    return schemathesis.openapi.from_url(f"{live_server_url}/api/schema/")


@pytest.fixture
def api_user():
    return {}


@pytest.fixture
def new_item(api_user):
    """new_item() -> (id, photo id) of a new listing of the test's user with one photo (in this process)."""
    from django.core.files.base import ContentFile

    from app.catalog.images import process_image
    from app.catalog.services import add_photo, create_item

    image = process_image(ContentFile(PNG, name="st.png"))

    def make():
        owner = SimpleNamespace(id=api_user["id"], username=api_user["username"])
        item = create_item(owner=owner, title="Schemathesis item", price=100)
        return item.id, add_photo(owner_id=owner.id, item_id=item.id, image=image).id

    return make


@pytest.fixture
def auth_headers(live_server_url, clean_marketplace, api_user):
    """A freshly registered user's token; clean_marketplace removes the user and whatever the cases create."""
    username = f"st{uuid.uuid4().hex[:12]}"
    credentials = {"username": username, "password": "correct-horse-battery-9"}
    api = f"{live_server_url}/api/v1"
    email = f"{username}@example.com"
    response = requests.post(f"{api}/auth/register", json={**credentials, "email": email}, timeout=30)
    assert response.status_code == 201, response.text
    api_user.update(id=int(response.json()["id"]), username=username)
    response = requests.post(f"{api}/auth/token", json=credentials, timeout=30)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Token {response.json()['token']}"}


@pytest.fixture
def partner_headers(clean_marketplace):
    from app.partners.keys import issue_key
    from app.partners.models import SCOPES, Partner

    _, key = issue_key(Partner.objects.create(name=f"st{uuid.uuid4().hex[:12]}"), SCOPES)
    return {"Authorization": f"Api-Key {key}"}


@pytest.mark.parametrize("operation_id", [name for name in operation_ids() if name not in SKIPPED])
def test_operation_conforms_to_the_description(
    operation_id, api_schema, auth_headers, partner_headers, live_server_url, new_item
):
    operation = api_schema.find_operation_by_id(operation_id)
    headers = partner_headers if operation_id.startswith("partner_") else auth_headers
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        # One user for every example is the point; a live server over HTTP is slower than Hypothesis expects.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def conforms(case):
        case, extra = with_a_real_item(as_a_client_would(case), operation_id, new_item)
        case.call_and_validate(
            base_url=live_server_url, headers=None if drops_authorization(case) else headers, checks=CHECKS_ALL,
            excluded_checks=EXCLUDED.get(operation_id, []),
            timeout=60, **extra,
        )

    conforms()
