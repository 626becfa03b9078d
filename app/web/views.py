"""Server-rendered pages: thin views over the same services and selectors as the API."""
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from app.accounts.error_codes import AccountErrorCode
from app.accounts.models import AuthToken
from app.accounts.selectors import account_overview
from app.accounts.services import register_user, revoke_token, revoke_tokens, tokens_of
from app.catalog import services as catalog
from app.catalog.images import process_image
from app.catalog.models import Item
from app.catalog.search import ListingQuery, search_listings
from app.catalog.selectors import attach_photos, inventory_of
from app.catalog.serializers import ListingSearchIn
from app.core.error_codes import CommonErrorCode
from app.core.errors import NotFound, ServiceError, error_body, error_response_for
from app.core.idempotency import KeyReused
from app.core.pagination import newest_first
from app.core.throttling import ScopedRateThrottle, ValueRateThrottle, wait_for
from app.orders.selectors import purchases_of, sales_of
from app.orders.services import place_order
from app.reports.selectors import platform_report
from app.reports.serializers import ReportParams
from app.wallet import services as wallet
from app.wallet.selectors import balance_of, ledger_of
from sharding.errors import FanOutError, InvalidCursorError, InvalidIdError
from sharding.placement import parse_routable_id
from sharding.transactions import LockTimeoutError, ShardMovedError

from .forms import CATEGORIES, BuyForm, DepositForm, ItemForm, RegisterForm
from .selectors import activity_report, attach_cover_photos, cluster_overview, item_for, own_item, period_starts
from .templatetags.periods import period_label
from .throttling import throttled, too_many_requests

HOME_LISTINGS = 12
SEARCH_PAGE_SIZE = 20
LIST_PAGE_SIZE = 50
SEARCH_PARAMS = ("q", "min_price", "max_price", "category", "sort")
SORT_CHOICES = [("relevance", "Best match"), ("newest", "Newest"), ("price", "Price: low to high"),
                ("-price", "Price: high to low")]
REPORT_PARAMS = ("from", "to", "group_by")
GROUP_BY_CHOICES = [("day", "Day"), ("week", "Week"), ("month", "Month")]


def _viewer_id(request):
    return request.user.id if request.user.is_authenticated else None


def _item_or_404(item_id, viewer_id):
    try:
        return item_for(item_id, viewer_id)
    except NotFound:
        raise Http404("No such item.") from None


def _own_item_or_404(owner_id, item_id):
    try:
        return own_item(owner_id, item_id)
    except NotFound:
        raise Http404("No such item.") from None


def staff_only(view):
    """A page for staff: others are asked to log in, and for users who are not staff it does not exist (404)."""
    @wraps(view)
    @login_required
    def staff_view(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)
    return staff_view


def _error_message(body):
    return body.get("error", {}).get("message") or "Something went wrong; try again."


def _run_form(operation, **params):
    """An idempotent service for a form: (status, body), with the errors it raises itself as bodies too."""
    try:
        return operation(**params)
    except KeyReused:
        # The same rendered form sent again with other values (the browser's back button): its key is spent.
        return 422, error_body(CommonErrorCode.IDEMPOTENCY_KEY_REUSED, "This form was already sent with other values; "
                                                         "reload the page and try again.")
    except (ServiceError, LockTimeoutError, ShardMovedError) as error:
        status, body, _ = error_response_for(error)
        return status, body


# --------------------------------------------------------------------------- browsing


def home(request):
    page = search_listings(
        ListingQuery(sort="newest", exclude_user_id=_viewer_id(request)), page_size=HOME_LISTINGS, allow_partial=True
    )
    return render(request, "web/home.html", {
        "listings": attach_photos(page.rows), "categories": CATEGORIES, "partial": page.failed,
    })


def search(request):
    raw = {name: request.GET.get(name, "").strip() for name in SEARCH_PARAMS}
    params = ListingSearchIn(data={name: value for name, value in raw.items() if value})
    context = {"params": raw, "categories": CATEGORIES, "sorts": SORT_CHOICES, "listings": [], "errors": {},
               "next_url": None, "searched": False}
    if not params.is_valid():
        context["errors"] = {field: [str(m) for m in msgs] for field, msgs in params.errors.items()}
        return render(request, "web/search.html", context, status=400)
    data = params.validated_data
    context["params"]["sort"] = data["sort"]
    # Counted once the parameters are good, as the API's search is: a refused search costs nothing.
    seconds = wait_for(request, [ScopedRateThrottle("search")])
    if seconds is not None:
        return too_many_requests(request, seconds)
    query = ListingQuery.from_params(data, viewer_id=_viewer_id(request))
    try:
        page = search_listings(query, page_size=SEARCH_PAGE_SIZE, cursor=request.GET.get("cursor") or None,
                               allow_partial=True)
    except InvalidCursorError:
        context["errors"] = {"cursor": ["This page link is out of date; start the search again."]}
        return render(request, "web/search.html", context, status=400)
    context.update(listings=attach_photos(page.rows), searched=True, partial=page.failed)
    if page.next_cursor:
        following = request.GET.copy()
        following["cursor"] = page.next_cursor
        context["next_url"] = f"?{following.urlencode()}"
    # "Previous" is the browser's back (site.js); without JavaScript the link goes to the first page.
    context["has_previous"] = bool(request.GET.get("cursor"))
    first = request.GET.copy()
    first.pop("cursor", None)
    context["first_url"] = f"?{first.urlencode()}"
    return render(request, "web/search.html", context)


def item_detail(request, item_id):
    item = _item_or_404(item_id, _viewer_id(request))
    is_owner = request.user.is_authenticated and item.user_id == request.user.id
    return render(request, "web/item_detail.html", {"item": item, "is_owner": is_owner})


# --------------------------------------------------------------------------- buying


@login_required
@throttled(lambda: ScopedRateThrottle("purchase"))
def buy(request, item_id):
    if request.method == "POST":
        return _place_order(request, item_id)
    item = _item_or_404(item_id, request.user.id)
    if item.user_id == request.user.id:
        messages.error(request, "You can't buy your own item.")
        return redirect("web:item", item_id=item.id)
    if item.status != Item.LISTED:
        raise Http404("No such item.")
    balance = balance_of(request.user.id)
    return render(request, "web/buy.html", {
        "item": item, "form": BuyForm(initial={"expected_price": item.price}),
        "balance": balance, "balance_after": balance - item.price, "enough": balance >= item.price,
    })


def _place_order(request, item_id):
    """POST of the confirmation step. No lookup first: a replayed key must answer even once the item is sold."""
    try:
        parse_routable_id(item_id)
    except InvalidIdError:
        raise Http404("No such item.") from None
    form = BuyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "This form has expired; check the price and try again.")
        return redirect("web:buy", item_id=item_id)
    key, price = form.cleaned_data["idempotency_key"], form.cleaned_data["expected_price"]
    status, body = _run_form(
        place_order, buyer=request.user, listing_id=item_id, expected_price=price, idempotency_key=key
    )
    if status == 201:
        messages.success(request, f"Purchase complete: you paid ${body['price']}. Your balance is ${body['balance']}.")
        return redirect("web:dashboard")
    messages.error(request, _error_message(body))
    try:
        item_for(item_id, request.user.id)
    except NotFound:
        return redirect("web:home")  # sold or gone: its page would be a 404
    return redirect("web:item", item_id=item_id)


# --------------------------------------------------------------------------- selling


def _processed_photos(request, form, room):
    """The photos chosen in the form's file input, checked and re-encoded; their errors go on the form."""
    uploads = request.FILES.getlist("photos")
    if len(uploads) > room:
        form.add_error(None, f"An item has at most {catalog.MAX_PHOTOS} photos: choose at most {room} more.")
        return []
    processed = []
    for upload in uploads:
        try:
            processed.append(process_image(upload))
        except ServiceError as error:
            form.add_error(None, f"{upload.name}: {error.message}")
    return processed


def _photo_uploads_counted(request):
    """The photos of a sell or edit form count in the API's upload limit, one each."""
    count = len(request.FILES.getlist("photos"))
    for _ in range(count):
        seconds = wait_for(request, [ScopedRateThrottle("photo")])
        if seconds is not None:
            return seconds
    return None


@login_required
@throttled(lambda: ScopedRateThrottle("listing"))
def sell(request):
    form = ItemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        seconds = _photo_uploads_counted(request)
        if seconds is not None:
            return too_many_requests(request, seconds)
        photos = _processed_photos(request, form, catalog.MAX_PHOTOS)
        if form.is_valid():  # no photo was refused
            item = catalog.create_item(owner=request.user, **form.cleaned_data)
            for image in photos:
                catalog.add_photo(owner_id=request.user.id, item_id=item.id, image=image)
            messages.success(request, f"“{item.title}” is listed for sale.")
            return redirect("web:item", item_id=item.id)
    return render(request, "web/item_form.html", {"form": form, "categories": CATEGORIES, "editing": None,
                                                  "max_photos": catalog.MAX_PHOTOS})


@login_required
def edit(request, item_id):
    item = _own_item_or_404(request.user.id, item_id)
    if item.status == Item.SOLD:
        messages.error(request, "This item has been sold and can no longer be changed.")
        return redirect("web:item", item_id=item.id)
    initial = {"title": item.title, "description": item.description, "price": item.price, "category": item.category}
    form = ItemForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        seconds = _photo_uploads_counted(request)
        if seconds is not None:
            return too_many_requests(request, seconds)
        photos = _processed_photos(request, form, catalog.MAX_PHOTOS - len(item.photos))
        try:
            if not form.is_valid():
                raise ServiceError("Nothing is saved: check the photos.")
            catalog.update_item(owner_id=request.user.id, item_id=item.id, changes=form.cleaned_data)
            for image in photos:
                catalog.add_photo(owner_id=request.user.id, item_id=item.id, image=image)
        except NotFound:
            raise Http404("No such item.") from None
        except ServiceError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Your changes are saved.")
            return redirect("web:item", item_id=item.id)
    return render(request, "web/item_form.html", {"form": form, "categories": CATEGORIES, "editing": item,
                                                  "max_photos": catalog.MAX_PHOTOS})


def _photo_id(raw):
    try:
        return parse_routable_id(str(raw))
    except InvalidIdError:
        raise Http404("No such photo.") from None


@login_required
@require_POST
def photo_remove(request, item_id, photo_id):
    item = _own_item_or_404(request.user.id, item_id)
    try:
        catalog.delete_photo(owner_id=request.user.id, item_id=item.id, photo_id=_photo_id(photo_id))
    except NotFound:
        raise Http404("No such photo.") from None
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The photo is removed.")
    return redirect("web:edit", item_id=item.id)


@login_required
@require_POST
def photo_move(request, item_id, photo_id):
    item = _own_item_or_404(request.user.id, item_id)
    offset = {"earlier": -1, "later": 1, "first": -catalog.MAX_PHOTOS}.get(request.POST.get("direction"))
    if offset is None:
        messages.error(request, "Choose earlier, later or first.")
        return redirect("web:edit", item_id=item.id)
    try:
        catalog.move_photo(owner_id=request.user.id, item_id=item.id, photo_id=_photo_id(photo_id), offset=offset)
    except NotFound:
        raise Http404("No such photo.") from None
    except ServiceError as error:
        messages.error(request, error.message)
    return redirect("web:edit", item_id=item.id)


@login_required
@require_POST
def change_status(request, item_id):
    item = _own_item_or_404(request.user.id, item_id)
    status = request.POST.get("status")
    if status not in (Item.LISTED, Item.UNLISTED):
        messages.error(request, "Choose listed or unlisted.")
        return redirect("web:item", item_id=item.id)
    try:
        catalog.update_item(owner_id=request.user.id, item_id=item.id, changes={"status": status})
    except NotFound:
        raise Http404("No such item.") from None
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "It is listed for sale again." if status == Item.LISTED
                         else "It is unlisted: only you can see it now.")
    return redirect("web:item", item_id=item.id)


@login_required
def delete(request, item_id):
    item = _own_item_or_404(request.user.id, item_id)
    if request.method == "POST":
        try:
            catalog.delete_item(owner_id=request.user.id, item_id=item.id)
        except NotFound:
            raise Http404("No such item.") from None
        except ServiceError as error:
            messages.error(request, error.message)
            return redirect("web:item", item_id=item.id)
        messages.success(request, f"“{item.title}” is deleted.")
        return redirect("web:inventory")
    return render(request, "web/item_delete.html", {"item": item})


# --------------------------------------------------------------------------- my account


def _newest_first(request, queryset):
    """A page of one of the user's lists, as the API pages it (a link with a bad cursor raises InvalidCursorError,
    which app.core.middleware answers with a 400 page)."""
    return newest_first(queryset, cursor=request.GET.get("cursor") or None, size=LIST_PAGE_SIZE)


@login_required
def inventory(request):
    rows, next_cursor = _newest_first(request, inventory_of(request.user.id))
    return render(request, "web/inventory.html", {"items": attach_photos(rows), "next_cursor": next_cursor})


@login_required
def purchases(request):
    rows, next_cursor = _newest_first(request, purchases_of(request.user.id))
    return render(request, "web/purchases.html", {"purchases": rows, "next_cursor": next_cursor})


@login_required
def sales(request):
    rows, next_cursor = _newest_first(request, sales_of(request.user.id))
    return render(request, "web/sales.html", {"sales": rows, "next_cursor": next_cursor})


@login_required
@throttled(lambda: ScopedRateThrottle("deposit"))
def wallet_page(request):
    user_id = request.user.id
    form = DepositForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        amount = form.cleaned_data["amount"]
        status, body = _run_form(
            wallet.deposit_funds, user_id=user_id, amount=amount, idempotency_key=form.cleaned_data["idempotency_key"]
        )
        if status == 201:
            messages.success(request, f"Deposited ${body['amount']}. Your balance is ${body['balance']}.")
        else:
            messages.error(request, _error_message(body))
        return redirect("web:wallet")
    rows, next_cursor = _newest_first(request, ledger_of(user_id))
    return render(request, "web/wallet.html", {
        "form": form, "balance": balance_of(user_id), "entries": rows, "next_cursor": next_cursor,
    })


@login_required
def dashboard(request):
    overview = account_overview(request.user.id)
    attach_cover_photos(request.user.id, overview["purchased"]["latest"])
    return render(request, "web/dashboard.html", {"overview": overview})


@login_required
def account(request):
    return render(request, "web/account.html", {"tokens": tokens_of(request.user)})


@login_required
@require_POST
def revoke_token_page(request):
    token = AuthToken.objects.filter(user=request.user, digest=request.POST.get("digest", "")[:128]).first()
    if token is None:
        raise Http404("No such token.")
    revoke_token(token)
    messages.success(request, f"{token.client or 'The app'} is logged out.")
    return redirect("web:account")


@login_required
@require_POST
def revoke_all_tokens_page(request):
    revoke_tokens(request.user)
    messages.success(request, "Every app and device that used the API is logged out.")
    return redirect("web:account")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's: the old password, then the new one twice; this session stays (update_session_auth_hash)."""

    template_name = "web/password_change.html"
    success_url = reverse_lazy("web:account")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password is changed. Every other browser, app and device is logged out.")
        return response


password_change = throttled(lambda: ScopedRateThrottle("password_change"))(PasswordChangeView.as_view())


class PasswordResetView(auth_views.PasswordResetView):
    """Django's: an email with a one-time link, the same answer whether or not an account has the address."""

    template_name = "web/password_reset_form.html"
    email_template_name = "web/password_reset_email.txt"
    subject_template_name = "web/password_reset_subject.txt"
    success_url = reverse_lazy("web:password_reset_done")

    @property
    def extra_email_context(self):
        # The link points at SITE_URL, never at the Host header of the request (the form lets these win).
        site = urlsplit(settings.SITE_URL)
        return {"domain": site.netloc, "protocol": site.scheme, "site_name": "Marketplace"}


# Reset emails per client address and per email address: nobody gets flooded with them.
password_reset = throttled(
    lambda: ScopedRateThrottle("password_reset"), lambda: ValueRateThrottle("password_reset", "email"),
)(PasswordResetView.as_view())


@throttled(lambda: ScopedRateThrottle("register"))
def register(request):
    if request.user.is_authenticated:
        return redirect("web:dashboard")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = register_user(username=data["username"], email=data["email"], password=data["password"])
        except ServiceError as error:
            field = {AccountErrorCode.USERNAME_TAKEN: "username", AccountErrorCode.EMAIL_TAKEN: "email"}.get(error.code)
            form.add_error(field, error.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(
                request, f"Welcome, {user.username}! Deposit some money to start buying, or sell something."
            )
            return redirect("web:dashboard")
    return render(request, "web/register.html", {"form": form})


# --------------------------------------------------------------------------- reports


def _report_context(request):
    """The period chooser, checked by the reports API's rules (ReportParams): (context, params or None)."""
    raw = {name: request.GET.get(name, "").strip() for name in REPORT_PARAMS}
    params = ReportParams(data={name: value for name, value in raw.items() if value})
    context = {"params": raw, "group_by_choices": GROUP_BY_CHOICES, "errors": {}}
    if not params.is_valid():
        context["errors"] = {field: [str(m) for m in msgs] for field, msgs in params.errors.items()}
        return context, None
    data = params.validated_data
    context["params"] = {"from": data["from"].isoformat(), "to": data["to"].isoformat(), "group_by": data["group_by"]}
    return context, data


def _csv_url(url_name, params):
    """The API report's CSV export of the same days: the browser's session logs it in."""
    query = urlencode({"from": params["from"].isoformat(), "to": params["to"].isoformat(), "format": "csv"})
    return f"{reverse(url_name)}?{query}"


def _money_chart(params, series):
    """Data for reports.js: a label for every period of the range (none left out, so the time axis has no
    gaps) and a dataset of dollar amounts per (label, {period: minor units})."""
    starts = period_starts(params["from"], params["to"], params["group_by"])
    return {
        "labels": [period_label(start, params["group_by"]) for start in starts],
        "datasets": [{"label": label, "data": [amounts.get(start, 0) / 100 for start in starts]}
                     for label, amounts in series],
    }


@login_required
def reports(request):
    context, params = _report_context(request)
    if params is None:
        return render(request, "web/reports.html", context, status=400)
    activity = activity_report(request.user.id, params["from"], params["to"], params["group_by"])
    context.update(
        activity=activity,
        chart=_money_chart(params, [
            ("Sales", {row["period"]: row["sales"]["amount"] for row in activity["periods"]}),
            ("Purchases", {row["period"]: row["purchases"]["amount"] for row in activity["periods"]}),
        ]),
        csv_links=[(label, _csv_url(url_name, params)) for label, url_name in [
            ("Sales", "reports:sales"), ("Purchases", "reports:purchases"),
            ("Wallet transactions", "reports:transactions"),
        ]],
    )
    return render(request, "web/reports.html", context)


@staff_only
def platform_report_page(request):
    context, params = _report_context(request)
    if params is None:
        return render(request, "web/platform_report.html", context, status=400)
    try:
        report = platform_report(params["from"], params["to"], params["group_by"])
    except FanOutError as error:
        status, body, _ = error_response_for(error)
        context["errors"] = {"non_field_errors": [body["error"]["message"]]}
        return render(request, "web/platform_report.html", context, status=status)
    context.update(
        report=report,
        chart=_money_chart(params, [("GMV", {row["period"]: row["gmv"] for row in report["periods"]})]),
        csv_url=_csv_url("reports:platform", params),
    )
    return render(request, "web/platform_report.html", context)


@staff_only
def cluster_page(request):
    return render(request, "web/cluster.html", {"cluster": cluster_overview()})
