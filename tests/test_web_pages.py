"""The server-rendered web pages (app.web), through Django's test client on the real test cluster."""
import csv
import io
import json
import os
import re
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import Client
from django.utils import timezone

import cluster
from app.catalog.models import Item
from app.catalog.services import create_item
from app.wallet.models import LedgerEntry
from app.wallet.selectors import balance_of, ledger_of
from app.wallet.services import deposit
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes, make_gid
from tests.conftest import home_of_user, worker_names

pytestmark = pytest.mark.usefixtures("clean_marketplace")

PASSWORD = "a-long-enough-pass-42"


def make_user(name):
    return get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD)


def fund(user, amount):
    with atomic_on_nodes([node_for_user(user.id)]):
        deposit(user.id, amount)


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def hidden(html, name):
    match = re.search(rf'name="{name}" value="([^"]*)"', html) or re.search(rf'value="([^"]*)" name="{name}"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def reload(item):
    return Item.objects.using(node_for_id(item.id)).get(id=item.id)


def page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.content.decode()


# --------------------------------------------------------------------------- accounts


def test_register_log_out_and_log_in_through_the_forms_with_csrf():
    client = Client(enforce_csrf_checks=True)
    form = page(client, "/register/")
    token = hidden(form, "csrfmiddlewaretoken")
    fields = {"username": "alice", "email": "alice@example.com", "password": PASSWORD, "password_again": PASSWORD}

    assert client.post("/register/", fields).status_code == 403  # no CSRF token
    response = client.post("/register/", {**fields, "csrfmiddlewaretoken": token}, follow=True)
    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "Welcome, alice" in response.content.decode()
    assert get_user_model().objects.filter(username="alice").exists()

    token = hidden(page(client, "/dashboard/"), "csrfmiddlewaretoken")
    response = client.post("/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 302  # logged out

    form = page(client, "/login/")
    token = hidden(form, "csrfmiddlewaretoken")
    response = client.post("/login/", {"username": "alice", "password": "wrong", "csrfmiddlewaretoken": token})
    assert response.status_code == 200 and "correct username and password" in response.content.decode()
    token = hidden(response.content.decode(), "csrfmiddlewaretoken")
    response = client.post("/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_web_login_counts_against_the_api_login_limit():
    make_user("alice")
    api, web = Client(), Client()
    for _ in range(5):
        response = api.post(
            "/api/v1/auth/token", {"username": "alice", "password": "wrong"}, content_type="application/json"
        )
        assert response.status_code == 401
    for _ in range(5):
        response = web.post("/login/", {"username": "ALICE", "password": "wrong"})  # usernames count ignoring case
        assert response.status_code == 200 and "correct username and password" in response.content.decode()

    response = web.post("/login/", {"username": "alice", "password": PASSWORD})  # the 11th attempt, the right password
    html = response.content.decode()
    assert response.status_code == 200 and "Too many login attempts for this username" in html
    assert re.search(r'class="form-errors" role="alert"><p>Too many login attempts.*Wait \d+ seconds', html)
    assert web.get("/dashboard/").status_code == 302  # not logged in
    assert api.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD},
                    content_type="application/json").status_code == 429  # the web's attempts count for the API too

    make_user("bob")  # another username from the same address is not held back
    assert web.post("/login/", {"username": "bob", "password": PASSWORD}).status_code == 302


def test_admin_login_has_the_same_limits_and_shares_the_count():
    get_user_model().objects.create_user("bob", "bob@example.com", PASSWORD, is_staff=True)
    admin, api = Client(), Client()
    for _attempt in range(5):
        response = api.post(
            "/api/v1/auth/token", {"username": "bob", "password": "wrong"}, content_type="application/json"
        )
        assert response.status_code == 401
    for attempt in range(5):
        response = admin.post("/admin/login/", {"username": " BOB", "password": f"wrong-{attempt}", "next": "/admin/"})
        assert response.status_code == 200
        assert "Please enter the correct username and password" in response.content.decode()

    # The 11th attempt, with the right password: refused, on the admin's own page.
    response = admin.post("/admin/login/", {"username": "bob", "password": PASSWORD, "next": "/admin/"})
    html = response.content.decode()
    assert response.status_code == 200 and "Too many login attempts" in html, response.status_code
    assert admin.get("/admin/").status_code == 302  # not logged in
    assert api.post("/api/v1/auth/token", {"username": "bob", "password": PASSWORD},
                    content_type="application/json").status_code == 429


def _api_works(token):
    return Client().get("/api/v1/wallet", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_account_page_lists_api_tokens_and_revokes_one_or_all():
    from app.accounts.services import issue_token

    alice, bob = make_user("alice"), make_user("bob")
    phone, _ = issue_token(alice, client="phone-app/1.0")
    laptop, laptop_row = issue_token(alice, client="laptop-cli/2.0")
    bobs, bobs_row = issue_token(bob, client="bob-cli")
    client = logged_in(alice)
    html = page(client, "/dashboard/")
    assert 'href="/account/"' in html  # linked from the nav and the dashboard
    html = page(client, "/account/")
    assert "phone-app/1.0" in html and "laptop-cli/2.0" in html and "bob-cli" not in html
    assert phone not in html and laptop not in html  # tokens are never shown again

    response = client.post("/account/tokens/revoke/", {"digest": laptop_row.digest})
    assert response.status_code == 302 and response["Location"] == "/account/"
    assert not _api_works(laptop) and _api_works(phone)
    assert client.post("/account/tokens/revoke/", {"digest": bobs_row.digest}).status_code == 404  # not hers
    assert _api_works(bobs)

    response = client.post("/account/tokens/revoke-all/", follow=True)
    assert "Every app and device that used the API is logged out" in response.content.decode()
    assert not _api_works(phone) and _api_works(bobs)
    assert client.get("/dashboard/").status_code == 200  # this browser stays logged in
    html = page(client, "/account/")
    assert "No app or device is logged in" in html


NEW_PASSWORD = "an-even-longer-pass-43"


def test_password_change_page_keeps_this_session_and_ends_every_other_one_and_every_token():
    from app.accounts.services import issue_token

    alice = make_user("alice")
    token, _ = issue_token(alice, client="phone-app/1.0")
    here, elsewhere = logged_in(alice), logged_in(alice)
    assert 'href="/account/password/"' in page(here, "/account/")
    page(here, "/account/password/")

    response = here.post("/account/password/", {"old_password": "wrong", "new_password1": NEW_PASSWORD,
                                                 "new_password2": NEW_PASSWORD})
    assert response.status_code == 200 and "Your old password was entered incorrectly" in response.content.decode()
    response = here.post(
        "/account/password/", {"old_password": PASSWORD, "new_password1": "123", "new_password2": "123"}
    )
    assert response.status_code == 200 and "This password is too short" in response.content.decode()
    assert _api_works(token)

    response = here.post("/account/password/", {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                                 "new_password2": NEW_PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/account/"
    assert "Your password is changed" in response.content.decode()
    assert here.get("/dashboard/").status_code == 200  # this session stays
    assert elsewhere.get("/dashboard/").status_code == 302  # every other one ends
    assert not _api_works(token)
    assert authenticate(username="alice", password=NEW_PASSWORD) is not None


def test_password_reset_by_email_link_ends_every_session_and_token(mailoutbox, settings):
    from app.accounts.services import issue_token

    settings.SITE_URL = "https://market.example.com"
    alice = make_user("alice")
    token, _ = issue_token(alice, client="phone-app/1.0")
    elsewhere = logged_in(alice)
    client = Client()
    assert 'href="/password-reset/"' in page(client, "/login/")
    page(client, "/password-reset/")

    response = client.post("/password-reset/", {"email": "nobody@example.com"})
    # The same for an unknown address.
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert len(mailoutbox) == 0
    response = client.post("/password-reset/", {"email": "ALICE@example.com"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert "Check your email" in page(client, "/password-reset/sent/")
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"] and "Marketplace" in mail.subject
    link = re.search(r"https://market\.example\.com(/password-reset/\S+/\S+/)", mail.body)
    assert link, mail.body  # the link points at SITE_URL, never at whatever Host the request named
    assert "alice" in mail.body

    response = client.get(link.group(1))
    assert response.status_code == 302  # Django moves the token out of the URL into the session
    form_url = response["Location"]
    assert "Choose a new password" in page(client, form_url)
    response = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/password-reset/done/"
    assert "log in" in page(client, "/password-reset/done/").lower()

    assert authenticate(username="alice", password=NEW_PASSWORD) is not None
    assert authenticate(username="alice", password=PASSWORD) is None
    assert not _api_works(token)
    assert elsewhere.get("/dashboard/").status_code == 302
    # The link works once.
    html = page(Client(), link.group(1), status=200)
    assert "invalid" in html.lower()


def test_every_way_of_setting_a_password_revokes_the_tokens():
    """The admin's password form and `manage.py changepassword` go through set_password and save, as the pages do."""
    from app.accounts.services import issue_token

    alice = make_user("alice")
    token, _ = issue_token(alice)
    alice.set_password(NEW_PASSWORD)
    assert _api_works(token)  # not saved yet
    alice.save()
    assert not _api_works(token)
    token, _ = issue_token(alice)
    alice.save()  # a save that changes no password leaves them alone
    assert _api_works(token)


def test_register_shows_errors_next_to_fields():
    make_user("bob")
    client = Client()
    html = client.post("/register/", {
        "username": "BOB", "email": "new@example.com", "password": PASSWORD, "password_again": PASSWORD,
    }).content.decode()
    assert "This username is taken." in html
    html = client.post("/register/", {
        "username": "carol", "email": "BOB@example.com", "password": PASSWORD, "password_again": PASSWORD,
    }).content.decode()
    assert "already registered" in html or "An account with this email exists." in html
    html = client.post("/register/", {
        "username": "carol", "email": "carol@example.com", "password": "123", "password_again": "123",
    }).content.decode()
    assert "too short" in html
    assert not get_user_model().objects.filter(username="carol").exists()


def test_anonymous_users_are_sent_to_log_in_for_private_pages():
    seller = make_user("seller")
    item = create_item(owner=seller, title="Lamp", price=500)
    client = Client()
    for url in ["/sell/", "/inventory/", "/wallet/", "/purchases/", "/sales/", "/dashboard/",
                f"/items/{item.id}/buy/", f"/items/{item.id}/edit/", f"/items/{item.id}/delete/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    assert client.get(f"/items/{item.id}/").status_code == 200  # public
    assert "Log in to buy" in page(client, f"/items/{item.id}/")


# --------------------------------------------------------------------------- selling and finding


def test_sell_an_item_then_find_it_on_home_and_search():
    seller, shopper = make_user("seller"), make_user("shopper")
    client = logged_in(seller)
    response = client.post("/sell/", {"title": "", "price": "abc", "description": "", "category": ""})
    html = response.content.decode()
    assert response.status_code == 200 and "This field is required." in html and "Enter an amount" in html

    response = client.post("/sell/", {"title": "Laptop", "description": "Fast and light", "price": "499.90",
                                      "category": "Electronics"}, follow=True)
    item = Item.objects.using(node_for_user(seller.id)).get(user_id=seller.id)
    assert item.price == 49990 and item.status == Item.LISTED
    assert response.redirect_chain[-1][0] == f"/items/{item.id}/"
    html = response.content.decode()
    assert "is listed for sale" in html and "$499.90" in html and "Edit" in html and "Unlist" in html

    other = logged_in(shopper)
    assert "Laptop" in page(other, "/")
    html = page(other, "/search/?q=laptp")  # a typo still finds it
    assert f"/items/{item.id}/" in html and "$499.90" in html
    assert "Laptop" in page(other, "/search/?category=Electronics&sort=price")
    assert "Laptop" not in page(client, "/search/?q=laptop")  # never your own listings
    assert "Laptop" not in page(client, "/")


def test_search_shows_bad_parameters_in_the_page():
    client = logged_in(make_user("shopper"))
    html = page(client, "/search/?min_price=5&max_price=1", status=400)
    assert "min_price must not be above max_price." in html
    assert "Enter an amount" in page(client, "/search/?min_price=cheap", status=400)
    assert "relevance needs a search query" in page(client, "/search/?sort=relevance", status=400)
    assert "out of date" in page(client, "/search/?cursor=garbage", status=400)


def test_search_pages_with_a_next_link():
    seller = make_user("seller")
    for n in range(25):
        create_item(owner=seller, title=f"Book {n}", price=100 + n)
    client = Client()
    first = page(client, "/search/?sort=price")
    match = re.search(r'href="(\?[^"]*cursor=[^"]*)" rel="next"', first)
    assert match and first.count('class="card"') == 20
    second = page(client, "/search/" + match.group(1).replace("&amp;", "&"))
    assert second.count('class="card"') == 5 and 'rel="next"' not in second and "Previous page" in second


def test_user_text_is_escaped():
    seller = make_user("seller")
    item = create_item(owner=seller, title="<script>alert(1)</script>", description="<b>bold</b>", price=100)
    client = Client()
    for url in ["/", f"/items/{item.id}/", "/search/?q=script"]:
        html = page(client, url)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert "<script>alert(1)" not in html, url
    assert "<b>bold</b>" not in page(client, f"/items/{item.id}/")


# --------------------------------------------------------------------------- owners


def test_only_the_owner_edits_unlists_and_deletes():
    seller, other = make_user("seller"), make_user("other")
    item = create_item(owner=seller, title="Chair", price=2500)
    intruder = logged_in(other)
    assert intruder.get(f"/items/{item.id}/edit/").status_code == 404
    assert intruder.post(f"/items/{item.id}/edit/", {"title": "Mine", "price": "1.00"}).status_code == 404
    assert intruder.post(f"/items/{item.id}/status/", {"status": "unlisted"}).status_code == 404
    assert intruder.post(f"/items/{item.id}/delete/").status_code == 404
    assert "Edit" not in page(intruder, f"/items/{item.id}/").split("<main")[1]
    assert reload(item).title == "Chair"

    owner = logged_in(seller)
    response = owner.post(f"/items/{item.id}/edit/", {"title": "Oak chair", "price": "30.00", "description": "",
                                                      "category": "Home"}, follow=True)
    assert "Your changes are saved." in response.content.decode()
    assert (reload(item).title, reload(item).price) == ("Oak chair", 3000)

    owner.post(f"/items/{item.id}/status/", {"status": "unlisted"})
    assert reload(item).status == Item.UNLISTED
    assert intruder.get(f"/items/{item.id}/").status_code == 404  # other users' unlisted items are hidden
    assert "Unlisted" in page(owner, f"/items/{item.id}/")
    owner.post(f"/items/{item.id}/status/", {"status": "listed"})
    assert reload(item).status == Item.LISTED

    assert "Yes, delete it" in page(owner, f"/items/{item.id}/delete/")
    response = owner.post(f"/items/{item.id}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/inventory/" and "is deleted" in response.content.decode()
    assert not Item.objects.using(node_for_id(item.id)).filter(id=item.id).exists()
    assert owner.get(f"/items/{item.id}/").status_code == 404


def test_unknown_items_are_a_404_page():
    client = logged_in(make_user("someone"))
    for url in ["/items/1/", "/items/99999999999999999999999/", "/no-such-page/"]:
        response = client.get(url)
        assert response.status_code == 404, url
    assert client.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"  # /api/ stays JSON


# --------------------------------------------------------------------------- buying


def test_buy_through_the_confirmation_step_once_even_when_posted_twice():
    seller, buyer = make_user("seller"), make_user("buyer")
    fund(buyer, 10_000)
    item = create_item(owner=seller, title="Guitar", price=1250)
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)

    assert f"/items/{item.id}/buy/" in page(client, f"/items/{item.id}/")
    confirm = page(client, f"/items/{item.id}/buy/")
    assert "$12.50" in confirm and "$100.00" in confirm and "$87.50" in confirm  # price, balance, balance after
    form = {"csrfmiddlewaretoken": hidden(confirm, "csrfmiddlewaretoken"),
            "idempotency_key": hidden(confirm, "idempotency_key"), "expected_price": hidden(confirm, "expected_price")}

    response = client.post(f"/items/{item.id}/buy/", form, follow=True)
    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "Purchase complete" in response.content.decode()
    again = client.post(f"/items/{item.id}/buy/", form, follow=True)  # the same form submitted twice
    assert again.redirect_chain[-1][0] == "/dashboard/"

    assert balance_of(buyer.id) == 8750 and balance_of(seller.id) == 1250
    assert ledger_of(buyer.id).filter(kind=LedgerEntry.PURCHASE).count() == 1
    assert reload(item).status == Item.SOLD
    assert "Guitar" in page(client, "/purchases/")
    assert "Guitar" in page(logged_in(seller), "/sales/")


def test_buying_without_enough_money_shows_the_error_and_changes_nothing():
    seller, buyer = make_user("seller"), make_user("buyer")
    fund(buyer, 500)
    item = create_item(owner=seller, title="Bike", price=20_000)
    client = logged_in(buyer)
    confirm = page(client, f"/items/{item.id}/buy/")
    assert "-$195.00" in confirm and "too low" in confirm
    response = client.post(f"/items/{item.id}/buy/", {
        "idempotency_key": hidden(confirm, "idempotency_key"), "expected_price": hidden(confirm, "expected_price"),
    }, follow=True)
    assert response.redirect_chain[-1][0] == f"/items/{item.id}/"
    assert "Your balance is too low" in response.content.decode()
    assert balance_of(buyer.id) == 500 and balance_of(seller.id) == 0
    assert reload(item).status == Item.LISTED


def test_a_changed_price_or_a_sold_item_is_refused():
    seller, buyer, rival = make_user("seller"), make_user("buyer"), make_user("rival")
    fund(buyer, 10_000)
    fund(rival, 10_000)
    item = create_item(owner=seller, title="Desk", price=1000)
    client = logged_in(buyer)
    confirm = page(client, f"/items/{item.id}/buy/")
    form = {"idempotency_key": hidden(confirm, "idempotency_key"), "expected_price": "900"}
    response = client.post(f"/items/{item.id}/buy/", form, follow=True)
    assert "The price has changed" in response.content.decode()

    rival_client = logged_in(rival)
    rival_confirm = page(rival_client, f"/items/{item.id}/buy/")
    rival_client.post(f"/items/{item.id}/buy/", {
        "idempotency_key": hidden(rival_confirm, "idempotency_key"), "expected_price": "1000"})
    response = client.post(f"/items/{item.id}/buy/", {
        "idempotency_key": hidden(confirm, "idempotency_key") + "x", "expected_price": "1000"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "no longer for sale" in response.content.decode()
    assert balance_of(buyer.id) == 10_000 and balance_of(rival.id) == 9_000


# --------------------------------------------------------------------------- wallet and pages


def test_deposit_once_per_form():
    user = make_user("saver")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    html = page(client, "/wallet/")
    assert "No money movements yet" in html
    form = {"csrfmiddlewaretoken": hidden(html, "csrfmiddlewaretoken"),
            "idempotency_key": hidden(html, "idempotency_key"), "amount": "25.50"}
    response = client.post("/wallet/", form, follow=True)
    assert "Deposited $25.50" in response.content.decode()
    client.post("/wallet/", form)
    assert balance_of(user.id) == 2550
    html = page(client, "/wallet/")
    assert "$25.50" in html and html.count("<td>Deposit</td>") == 1
    response = client.post("/wallet/", {**form, "amount": "0", "idempotency_key": "web-other"})
    assert "at least 0.01" in response.content.decode()
    response = client.post("/wallet/", {**form, "amount": "99.00"}, follow=True)  # the old form, other amount
    assert "already sent with other values" in response.content.decode()
    assert balance_of(user.id) == 2550


def test_wallet_history_pages_by_cursor():
    user = make_user("saver")
    for _ in range(55):
        fund(user, 100)
    client = logged_in(user)
    html = page(client, "/wallet/")
    assert html.count("<td>Deposit</td>") == 50
    cursor = re.search(r'href="\?cursor=([^"]+)" rel="next"', html).group(1)
    assert page(client, f"/wallet/?cursor={cursor}").count("<td>Deposit</td>") == 5


@pytest.mark.parametrize("path", ["/wallet/", "/inventory/", "/purchases/", "/sales/"])
def test_a_list_page_link_with_a_bad_cursor_is_a_400_as_on_the_api(path):
    client = logged_in(make_user("linker"))
    html = page(client, f"{path}?cursor=garbage", status=400)
    assert "This page link is out of date" in html and f'href="{path}"' in html


def test_every_page_shows_its_empty_state_for_a_new_user():
    client = logged_in(make_user("newbie"))
    expected = {
        "/": "No listings yet", "/search/?q=anything": "No listings match", "/sell/": "Sell something",
        "/inventory/": "You have no items yet", "/wallet/": "No money movements yet",
        "/purchases/": "You haven't bought anything yet", "/sales/": "No sales yet", "/dashboard/": "Nothing here yet",
    }
    for url, text in expected.items():
        assert text in page(client, url), url


def test_every_page_renders_for_a_user_with_data():
    seller, buyer = make_user("seller"), make_user("buyer")
    fund(buyer, 50_000)
    items = [create_item(owner=seller, title=f"Thing {n}", price=1000 + n, category="Toys") for n in range(3)]
    buying = logged_in(buyer)
    confirm = page(buying, f"/items/{items[0].id}/buy/")
    buying.post(f"/items/{items[0].id}/buy/", {
        "idempotency_key": hidden(confirm, "idempotency_key"), "expected_price": hidden(confirm, "expected_price")})
    selling = logged_in(seller)
    for client, urls in [
        (buying, ["/", "/search/", "/search/?q=thing&sort=-price", "/search/?category=Toys", f"/items/{items[1].id}/",
                  f"/items/{items[1].id}/buy/", "/inventory/", "/wallet/", "/purchases/", "/dashboard/", "/sell/"]),
        (selling, ["/", "/inventory/", "/wallet/", "/sales/", "/dashboard/", f"/items/{items[1].id}/edit/",
                   f"/items/{items[0].id}/"]),
    ]:
        for url in urls:
            page(client, url)
    dashboard = page(buying, "/dashboard/")
    assert "$490.00" in dashboard and "Thing 0" in dashboard  # balance after the purchase; the latest purchase
    assert "$10.00" in page(selling, "/dashboard/")  # earned
    assert "Sold" in page(selling, f"/items/{items[0].id}/")


def test_static_files_and_money_filter():
    from app.web.templatetags.money import money

    assert (money(1250), money(-5), money(0)) == ("$12.50", "-$0.05", "$0.00")
    html = page(Client(), "/")
    assert 'name="viewport"' in html and "/static/web/site.css" in html
    response = Client().get("/static/web/site.css")  # served by WhiteNoise
    assert response.status_code == 200 and b":focus-visible" in b"".join(response.streaming_content)


def test_error_pages_use_the_site_templates_when_debug_is_off(settings):
    from django.test import RequestFactory

    from app.core.errors import server_error

    settings.DEBUG = False
    response = Client().get("/items/1/")
    assert response.status_code == 404 and "Page not found" in response.content.decode()
    assert "Back to the home page" in response.content.decode()
    response = server_error(RequestFactory().get("/dashboard/"))
    assert response.status_code == 500 and "Something went wrong on our side" in response.content.decode()
    assert server_error(RequestFactory().get("/api/v1/wallet")).status_code == 500  # JSON for the API


# --------------------------------------------------------------------------- reports


def buy_through_the_page(client, item):
    confirm = page(client, f"/items/{item.id}/buy/")
    response = client.post(f"/items/{item.id}/buy/", {
        "idempotency_key": hidden(confirm, "idempotency_key"), "expected_price": hidden(confirm, "expected_price")})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def chart_data(html, chart_id):
    match = re.search(rf'<script id="{chart_id}-data" type="application/json">(.*?)</script>', html)
    assert match, f"no data of {chart_id}"
    return json.loads(match.group(1))


def test_reports_page_charts_and_tables_sales_and_purchases_per_period_with_csv_links():
    seller, buyer = make_user("seller"), make_user("buyer")
    fund(buyer, 50_000)
    lamp = create_item(owner=seller, title="Lamp", price=1250)
    desk = create_item(owner=seller, title="Desk", price=10_000)
    buying, selling = logged_in(buyer), logged_in(seller)
    buy_through_the_page(buying, lamp)
    buy_through_the_page(buying, desk)
    today = timezone.now().date()

    html = page(buying, "/reports/")
    assert "/static/vendor/chart.js/chart.umd.min.js" in html and "/static/web/reports.js" in html
    assert re.search(r"<dt>Bought</dt><dd>2</dd>.*<dt>Spent</dt><dd>\$112.50</dd>", html, re.S)
    chart = chart_data(html, "activity-chart")
    assert len(chart["labels"]) == 30 and chart["labels"][-1] == today.isoformat()  # the last 30 days, none left out
    assert [s["label"] for s in chart["datasets"]] == ["Sales", "Purchases"]
    assert chart["datasets"][1]["data"][-1] == 112.5 and sum(chart["datasets"][1]["data"]) == 112.5
    assert sum(chart["datasets"][0]["data"]) == 0
    # The table beside the chart: one row per period with activity, and the totals.
    assert re.search(rf'<th scope="row">{today.isoformat()}</th>\s*<td class="num">0</td><td class="num">\$0.00</td>\s*'
                     r'<td class="num">2</td><td class="num">\$112.50</td>', html)
    assert 'aria-describedby="activity-chart-table"' in html and 'id="activity-chart-table"' in html

    week = page(selling, "/reports/?group_by=week")
    monday = today - timedelta(days=today.weekday())
    assert re.search(
        rf'<th scope="row">{monday.isoformat()}</th>\s*<td class="num">2</td><td class="num">\$112.50</td>', week
    )
    assert "Week starting" in week and chart_data(week, "activity-chart")["labels"][-1] == monday.isoformat()
    month = page(selling, f"/reports/?group_by=month&from={today.replace(day=1).isoformat()}")
    assert chart_data(month, "activity-chart")["labels"] == [today.strftime("%Y-%m")]

    # The CSV links are the API's exports of the same days, and the browser's session is enough for them.
    links = re.findall(r'<a href="([^"]+)" download>', html)
    first = (today - timedelta(days=29)).isoformat()
    assert links == [f"/api/v1/reports/{name}?from={first}&amp;to={today.isoformat()}&amp;format=csv"
                     for name in ("sales", "purchases", "transactions")]
    response = buying.get(links[1].replace("&amp;", "&"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(row["title"] for row in rows) == ["Desk", "Lamp"]
    assert Client().get(links[1].replace("&amp;", "&")).status_code in (401, 403)  # not without logging in


def test_reports_page_shows_bad_days_next_to_the_field_and_an_empty_state():
    client = logged_in(make_user("newbie"))
    html = page(client, "/reports/?from=2026-05-02&to=2026-05-01", status=400)
    assert re.search(r'id="r-from"[^>]*aria-invalid="true".*?<p class="field-error" id="r-from-error" role="alert">'
                     r"Must be on or before `to`.</p>", html, re.S)
    assert "Date has wrong format" in page(client, "/reports/?to=yesterday", status=400)
    assert "is not a valid choice" in page(client, "/reports/?group_by=year", status=400)
    html = page(client, "/reports/?from=2026-01-01&to=2026-01-31")
    assert "No sales or purchases from 2026-01-01 to 2026-01-31" in html and "<canvas" not in html
    assert "sell something" in html and "(CSV)" in html
    assert Client().get("/reports/")["Location"].startswith("/login/")


def test_reports_pages_at_the_ends_of_the_calendar():
    """Dates whose arithmetic would overflow are an error next to the field or a page, never a 500."""
    client = logged_in(make_user("newbie"))
    staff = make_user("boss")
    staff.is_staff = True
    staff.save()
    assert "29 days after 0001-01-01" in page(client, "/reports/?to=0001-01-01", status=400)
    for url in ("/reports/", "/reports/platform/"):
        who = logged_in(staff)
        for group_by in ("day", "week", "month"):
            page(who, f"{url}?from=9999-12-01&to=9999-12-31&group_by={group_by}")
            page(who, f"{url}?from=0001-01-01&to=0001-01-31&group_by={group_by}")


def test_chart_library_is_served_by_the_app():
    response = Client().get("/static/vendor/chart.js/chart.umd.min.js")
    assert response.status_code == 200
    assert b"Chart.js v4" in b"".join(response.streaming_content)[:200]


# --------------------------------------------------------------------------- staff pages


def make_staff(name):
    user = make_user(name)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def test_staff_pages_do_not_exist_for_other_users(settings):
    settings.DEBUG = False  # the site's own 404 page
    client = logged_in(make_user("someone"))
    for url in ["/reports/platform/", "/staff/cluster/"]:
        response = client.get(url)
        assert response.status_code == 404 and "Page not found" in response.content.decode(), url
        assert Client().get(url)["Location"].startswith("/login/?next="), url
    nav = page(client, "/dashboard/").split("<main")[0]
    assert "/reports/" in nav and "/staff/cluster/" not in nav and "/reports/platform/" not in nav
    staff_nav = page(logged_in(make_staff("admin")), "/dashboard/").split("<main")[0]
    assert "/staff/cluster/" in staff_nav and "/reports/platform/" in staff_nav


def test_a_new_page_that_fails_shows_the_sites_500_page(settings, monkeypatch):
    settings.DEBUG = False

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr("app.web.views.cluster_overview", broken)
    client = Client(raise_request_exception=False)
    client.force_login(make_staff("admin"))
    response = client.get("/staff/cluster/")
    assert response.status_code == 500 and "Something went wrong on our side" in response.content.decode()


def users_on_two_workers():
    """Two new users whose rows live on different workers (user ids route by id mod logical shards)."""
    first = make_user("first")
    for n in range(50):
        other = make_user(f"second{n}")
        if home_of_user(other.id) != home_of_user(first.id):
            return first, other
    raise AssertionError("no second user landed on another worker")


def test_platform_report_page_sums_every_worker():
    a, b = users_on_two_workers()
    fund(a, 100_000)
    fund(b, 100_000)
    for seller, buyer, price in [(a, b, 1500), (b, a, 2500), (b, a, 4000)]:
        buy_through_the_page(logged_in(buyer), create_item(owner=seller, title=f"Thing {price}", price=price,
                                                           category="Toys" if price > 2000 else "Books"))
    html = page(logged_in(make_staff("admin")), "/reports/platform/?group_by=month")
    assert re.search(r"<dt>Sales</dt><dd>3</dd>.*<dt>GMV</dt><dd>\$80.00</dd>.*<dt>Active sellers</dt><dd>2</dd>"
                     r".*<dt>Active buyers</dt><dd>2</dd>", html, re.S)
    assert sum(chart_data(html, "gmv-chart")["datasets"][0]["data"]) == 80
    assert re.search(r"<td>Toys</td><td class=\"num\">2</td><td class=\"num\">\$65.00</td>", html)
    assert "/api/v1/reports/platform?" in html and "format=csv" in html


@pytest.mark.own_engine  # our workers and prepared transactions; Citus: test_citus_admin
def test_cluster_page_shows_nodes_shards_row_counts_and_in_doubt_transactions(direct_connect):
    a, b = users_on_two_workers()
    fund(a, 5000)
    create_item(owner=a, title="Lamp", price=100)
    create_item(owner=b, title="Desk", price=100)
    victim = worker_names()[-1]
    gid = make_gid(987654321, victim)
    prepared = direct_connect(victim)
    with prepared.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("PREPARE TRANSACTION %s", [gid])
    try:
        html = page(logged_in(make_staff("admin")), "/staff/cluster/")
    finally:
        with prepared.cursor() as cursor:
            cursor.execute("ROLLBACK PREPARED %s", [gid])

    expected_rows = {}
    for name in worker_names():
        with direct_connect(name).cursor() as cursor:
            expected_rows[name] = []
            for table in ("wallet_wallet", "wallet_ledgerentry", "catalog_item", "orders_purchase", "orders_sale"):
                cursor.execute(f"SELECT count(*) FROM {table}")
                expected_rows[name].append(cursor.fetchone()[0])
    assert sum(sum(counts) for counts in expected_rows.values()) >= 4  # a wallet, a ledger entry, two items
    for name, counts in expected_rows.items():
        cells = "".join(f'<td class="num">{count}</td>' for count in counts)
        assert re.search(rf'<th scope="row">{name}</th>\s*{cells}', html), name
        assert re.search(rf'<th scope="row">{name}</th>\s*<td>worker</td>.*?status-up">up</span>.*?<td>32 ', html, re.S)
    assert re.search(r'<th scope="row">coordinator</th>\s*<td>coordinator</td>', html)
    assert "Exact counts (<code>count(*)</code>" in html
    assert re.search(rf"<td>{victim}</td><td><code>{gid}</code></td><td class=\"num\">\d+\.\d s</td>", html)


@pytest.mark.own_engine  # our workers and prepared transactions; Citus: test_citus_admin
def test_cluster_page_renders_while_a_worker_is_down():
    client = logged_in(make_staff("admin"))
    name, victim = os.environ["CLUSTER_NAME"], worker_names()[-1]
    cluster.stop_node(name, victim, log=lambda *_: None)
    try:
        response = client.get("/staff/cluster/")
    finally:
        cluster.start_node(name, victim, log=lambda *_: None)
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(rf'<th scope="row">{victim}</th>\s*<td>worker</td>.*?status-down">down</span>', html, re.S)
    assert re.search(
        rf'<th scope="row">{victim}</th>\s*<td colspan="5"><span class="status status-down">no answer', html
    )
    assert f"Total (without {victim})" in html and f"{victim} could not be asked" in html
    others = [w for w in worker_names() if w != victim]
    assert all(
        re.search(rf'<th scope="row">{w}</th>\s*<td>worker</td>.*?status-up">up</span>', html, re.S) for w in others
    )
