"""The website in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, no browser download)
against the dev server on the test cluster (live_server_url), as people would use it.

The main pages are saved as screenshots in docs/screenshots/ (the README shows them), overwritten on each run.
"""
import csv
import io
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from app.catalog.images import process_image
from app.catalog.models import Item, Photo
from app.catalog.services import add_photo, create_item
from app.core.demo_data import demo_photo_bytes
from app.orders.models import Purchase
from app.wallet.selectors import balance_of
from app.wallet.services import deposit
from sharding.placement import node_for_id, node_for_user
from sharding.transactions import atomic_on_nodes
from tests import images
from tests.conftest import all_homes, home_of_user

pytestmark = pytest.mark.usefixtures("clean_marketplace")

CHROMIUM = "/usr/bin/chromium"
# Headless as root, and quiet on a machine without outside network: no background requests of Chromium's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
PASSWORD = "a-long-enough-pass-42"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls from a thread with a
    # running loop. These calls are plain synchronous ones between browser steps, so they are safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def dialogs():
    """Every alert/confirm/prompt any page opened: user text run as script would show up here."""
    return []


@pytest.fixture
def csp_violations():
    """Every Content-Security-Policy violation any page reported (Chromium logs each one to the console)."""
    return []


def is_csp_violation(message):
    return "Content Security Policy" in message or "Content-Security-Policy" in message


@pytest.fixture
def visitor(browser, live_server_url, dialogs, csp_violations):
    """visitor(viewport) -> a page in a new browser context: its own cookies, so its own session."""
    contexts = []

    def new_visitor(viewport=DESKTOP):
        context = browser.new_context(base_url=live_server_url, viewport=viewport)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("console", lambda message: is_csp_violation(message.text) and csp_violations.append(message.text))
        return page

    yield new_visitor
    for context in contexts:
        context.close()
    assert dialogs == [], f"a page opened a dialog: {dialogs}"
    assert csp_violations == [], f"the Content-Security-Policy blocked something: {csp_violations}"


def demo_photo_with_gps(title):
    """A demo card as a phone would save it: with EXIF holding a GPS position."""
    card = Image.open(io.BytesIO(demo_photo_bytes(title, "electronics")))
    exif = Image.Exif()
    gps = exif.get_ifd(images.GPS_IFD)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    out = io.BytesIO()
    card.save(out, "JPEG", exif=exif.tobytes())
    assert images.has_gps(out.getvalue())
    return out.getvalue()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def make_user(name, *, is_staff=False):
    return get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD, is_staff=is_staff)


def user_on_another_worker(user_id, name):
    """A new user whose rows live on another worker than user_id's (ids route by id mod logical shards)."""
    for n in range(50):
        user = make_user(f"{name}{n}" if n else name)
        if home_of_user(user.id) != home_of_user(user_id):
            return user
    raise AssertionError("no user landed on another worker")


def fund(user, amount):
    with atomic_on_nodes([node_for_user(user.id)]):
        deposit(user.id, amount)


def reload(item):
    return Item.objects.using(node_for_id(item.id)).get(id=item.id)


def field(page, label):
    """The form field labelled `label` (a required one's label ends with a "*" hidden from screen readers)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


def expect_message(page, kind, text):
    expect(page.locator(f".messages .message-{kind}")).to_contain_text(text)


def total(page, label):
    """The figure under `label` in a report's totals."""
    return page.locator(".totals div").filter(has=page.locator("dt", has_text=label)).locator("dd")


# --------------------------------------------------------------------------- steps a person takes


def register(page, username):
    page.goto("/register/")
    field(page, "Username").fill(username)
    field(page, "Email").fill(f"{username}@example.com")
    field(page, "Password").fill(PASSWORD)
    field(page, "Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect_message(page, "success", f"Welcome, {username}!")


def log_in(page, username):
    """With the keyboard only: the labelled fields in tab order, Enter sends the form."""
    page.goto("/login/")
    field(page, "Username").focus()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(field(page, "Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


def log_out(page, username):
    page.get_by_role("button", name=f"Log out ({username})").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()


def deposit_through_the_wallet(page, amount, balance):
    page.goto("/wallet/")
    field(page, "Amount (USD)").fill(amount)
    page.get_by_role("button", name="Deposit").click()
    expect_message(page, "success", f"Deposited ${amount}. Your balance is ${balance}.")


def sell(page, title, price, description="", category="", photos=(), before_sending=None):
    page.goto("/sell/")
    field(page, "Title").fill(title)
    field(page, "Description").fill(description)
    field(page, "Price (USD)").fill(price)
    field(page, "Category").fill(category)
    if photos:
        field(page, "Photos").set_input_files([str(path) for path in photos])
        # Previews of the chosen files, before anything is sent.
        expect(page.locator("#photo-previews img")).to_have_count(len(photos))
    if before_sending:
        before_sending(page)
    page.get_by_role("button", name="List it for sale").click()
    expect_message(page, "success", "is listed for sale")
    return int(re.search(r"/items/(\d+)/$", page.url).group(1))


# --------------------------------------------------------------------------- scenarios


def loaded(image):
    """Whether an <img> has loaded its picture (the site served it and the policy allowed it)."""
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def test_one_visitor_sells_and_another_on_another_worker_finds_it_with_a_typo_and_buys_it(visitor, tmp_path):
    shop = make_user("shop")  # other listings, so that the pages look as they would
    for title, price, category in [("Camera tripod", 2900, "Electronics"), ("Road bike", 42000, "Sports"),
                                   ("Oak desk lamp", 3500, "Home"), ("Acoustic guitar", 18000, "Music"),
                                   ("Espresso machine", 9900, "Home")]:
        item = create_item(owner=shop, title=title, price=price, category=category,
                           description=f"A good {title.lower()}.")
        card = ContentFile(demo_photo_bytes(title, category), name="card.jpg")
        add_photo(owner_id=shop.id, item_id=item.id, image=process_image(card))

    # A phone's photo, with its GPS position in EXIF, and a second one.
    photo = tmp_path / "camera.jpg"
    photo.write_bytes(demo_photo_with_gps("Vintage camera"))
    back = tmp_path / "camera-back.png"
    back.write_bytes(images.png((900, 600), (120, 90, 60)))
    seller = visitor()
    register(seller, "sam")
    deposit_through_the_wallet(seller, "20.00", "20.00")
    camera_id = sell(seller, "Vintage camera", "125.00", "A 1970s rangefinder, works well.", "Electronics",
                     photos=[back, photo], before_sending=lambda page: (
                         # Reorder before sending: the camera's front first.
                         page.locator("#photo-previews li").nth(1).get_by_role("button", name="Move earlier").click(),
                         expect(page.locator("#photo-previews li").first).to_contain_text("camera.jpg"),
                         screenshot(page, "sell"),
                     ))
    expect(seller.locator(".gallery-main img")).to_have_attribute("alt", "Vintage camera")
    assert loaded(seller.locator(".gallery-main img"))
    expect(seller.locator(".gallery-thumbs img")).to_have_count(2)
    log_out(seller, "sam")
    sam = get_user_model().objects.get(username="sam")

    # The buyer's rows live on the other worker: the purchase is a two-phase commit.
    buyer_user = user_on_another_worker(sam.id, "bea")
    assert home_of_user(buyer_user.id) != home_of_user(sam.id)
    buyer = visitor()
    log_in(buyer, buyer_user.username)
    deposit_through_the_wallet(buyer, "300.00", "300.00")
    screenshot(buyer, "wallet")
    buyer.goto("/")
    expect(buyer.get_by_role("link", name="Vintage camera", exact=True)).to_be_visible()
    thumbnail = buyer.locator(".card", has_text="Vintage camera").locator("img")
    expect(thumbnail).to_have_attribute("loading", "lazy")
    expect(thumbnail).to_have_attribute("alt", "Vintage camera")
    assert thumbnail.get_attribute("width") and thumbnail.get_attribute("height")
    buyer.wait_for_load_state("networkidle")
    screenshot(buyer, "home")

    search = buyer.get_by_role("searchbox", name="Search listings")
    search.fill("camra")
    search.press("Enter")
    expect(buyer).to_have_url(re.compile(r"/search/\?q=camra$"))
    expect(buyer.get_by_role("heading", name="Results for “camra”")).to_be_visible()
    screenshot(buyer, "search")
    buyer.get_by_role("link", name="Vintage camera", exact=True).click()
    expect(buyer.get_by_role("heading", level=1)).to_have_text("Vintage camera")
    expect(buyer.locator(".price.big")).to_have_text("$125.00")
    assert loaded(buyer.locator(".gallery-main img"))
    screenshot(buyer, "item")

    buyer.get_by_role("link", name="Buy for $125.00").click()
    expect(buyer.get_by_role("heading", name="Confirm your purchase")).to_be_visible()
    expect(buyer.locator("table.summary")).to_contain_text("$300.00")
    expect(buyer.locator("table.summary")).to_contain_text("$175.00")
    screenshot(buyer, "buy")
    buyer.get_by_role("button", name="Buy for $125.00").click()
    expect(buyer).to_have_url(re.compile(r"/dashboard/$"))
    expect_message(buyer, "success", "Purchase complete: you paid $125.00. Your balance is $175.00.")
    purchases = buyer.locator("section", has=buyer.get_by_role("heading", name="Latest purchases"))
    expect(purchases).to_contain_text("Vintage camera")
    screenshot(buyer, "dashboard")

    buyer.get_by_role("link", name="Inventory", exact=True).click()
    expect(buyer.get_by_role("row", name=re.compile("Vintage camera"))).to_contain_text("(bought)")
    buyer.wait_for_load_state("networkidle")
    screenshot(buyer, "inventory")
    # The buyer's own item page shows the photos the listing had, front first.
    buyer.get_by_role("link", name="Vintage camera", exact=True).click()
    expect(buyer.get_by_role("heading", level=1)).to_have_text("Vintage camera")
    main_photo = buyer.locator(".gallery-main img")
    expect(main_photo).to_have_attribute("alt", "Vintage camera")
    assert loaded(main_photo)
    expect(buyer.locator(".gallery-thumbs img")).to_have_count(2)
    bought_photo = buyer.request.get(main_photo.get_attribute("src"))
    assert bought_photo.ok and not images.has_gps(bought_photo.body())  # the GPS position is gone

    buyer.get_by_role("link", name="Reports", exact=True).click()
    expect(total(buyer, "Bought")).to_have_text("1")
    expect(total(buyer, "Spent")).to_have_text("$125.00")
    # Chart.js drew the chart from the same figures as the table.
    totals = buyer.evaluate(
        "Chart.getChart('activity-chart').data.datasets.map(s => s.data.reduce((a, b) => a + b, 0))"
    )
    assert totals == [0, 125]
    screenshot(buyer, "reports")
    with buyer.expect_download() as download:
        buyer.get_by_role("link", name="Purchases (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(row["title"], row["price"], row["seller_username"]) for row in rows] == [
        ("Vintage camera", "125.00", "sam")
    ]

    # What the pages said is what the nodes hold.
    camera = Item.objects.using(node_for_id(camera_id)).get(id=camera_id)
    bought = Purchase.objects.using(node_for_user(buyer_user.id)).get(user_id=buyer_user.id)
    assert camera.status == Item.SOLD and bought.source_item_id == camera_id and bought.price == 12500
    assert Item.objects.using(node_for_user(buyer_user.id)).get(id=bought.item_id).user_id == buyer_user.id
    assert Photo.objects.using(node_for_user(buyer_user.id)).filter(item_id=bought.item_id).count() == 2
    assert (balance_of(sam.id), balance_of(buyer_user.id)) == (14500, 17500)

    log_in(seller, "sam")
    expect(seller.locator(".stats")).to_contain_text("$145.00")
    seller.get_by_role("link", name="Sold · earned").click()
    expect(seller.get_by_role("row", name=re.compile("Vintage camera"))).to_contain_text(buyer_user.username)
    seller.goto("/wallet/")
    expect(seller.locator(".balance")).to_have_text("Balance: $145.00")
    expect(seller.get_by_role("row", name=re.compile("Sale"))).to_contain_text("$125.00")


def test_buying_without_enough_money_shows_the_error_and_changes_nothing(visitor):
    seller, buyer_user = make_user("sam"), make_user("bea")
    bike = create_item(owner=seller, title="Road bike", price=42_000)
    fund(buyer_user, 1_000)
    buyer = visitor()
    log_in(buyer, "bea")
    buyer.goto(f"/items/{bike.id}/")
    buyer.get_by_role("link", name="Buy for $420.00").click()
    expect(buyer.get_by_role("alert")).to_contain_text("Your balance is too low for this purchase.")
    buyer.get_by_role("button", name="Buy for $420.00").click()  # sent all the same
    expect(buyer).to_have_url(re.compile(rf"/items/{bike.id}/$"))
    expect_message(buyer, "error", "Your balance is too low")
    buyer.goto("/wallet/")
    expect(buyer.locator(".balance")).to_have_text("Balance: $10.00")

    assert (balance_of(buyer_user.id), balance_of(seller.id)) == (1_000, 0)
    assert (reload(bike).status, reload(bike).user_id) == (Item.LISTED, seller.id)
    assert not Purchase.objects.using(node_for_user(buyer_user.id)).filter(user_id=buyer_user.id).exists()


def test_another_users_edit_page_is_not_found(visitor):
    seller, _ = make_user("sam"), make_user("eve")
    lamp = create_item(owner=seller, title="Lamp", price=500)
    eve = visitor()
    log_in(eve, "eve")
    for url in [f"/items/{lamp.id}/edit/", f"/items/{lamp.id}/delete/"]:
        assert eve.goto(url).status == 404, url
    eve.goto(f"/items/{lamp.id}/")
    expect(eve.get_by_role("link", name="Edit")).to_have_count(0)
    assert reload(lamp).title == "Lamp"


def test_a_title_with_markup_is_shown_as_text_and_never_run(visitor, dialogs):
    title = "<script>alert(1)</script>"
    seller = visitor()
    register(seller, "mallory")
    item_id = sell(seller, title, "5.00", '<img src=x onerror="alert(2)">', "<b>Toys</b>")
    expect(seller.get_by_role("heading", level=1)).to_have_text(title)
    expect(seller.locator(".description")).to_have_text('<img src=x onerror="alert(2)">')
    log_out(seller, "mallory")

    shopper = visitor()
    for url in ["/", "/search/?q=script", f"/items/{item_id}/"]:
        shopper.goto(url)
        expect(shopper.get_by_text(title).first).to_be_visible()
    assert shopper.locator("img").count() == 0
    assert dialogs == []  # no alert() ran (the fixture checks every page once more at the end)


def test_pages_fit_a_phone_screen_and_work_there(visitor):
    seller = make_user("sam")
    make_user("bea")
    lamp = create_item(owner=seller, title="Oak desk lamp with a rather long title that has to wrap on a phone",
                       price=3500, category="Home", description="Warm light.")
    create_item(owner=seller, title="Road bike", price=42_000, category="Sports")
    phone = visitor(PHONE)

    def fits(url):
        phone.goto(url)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{url} is {width}px wide"

    for url in ["/", "/search/?q=lamp", f"/items/{lamp.id}/", "/register/", "/login/"]:
        fits(url)
    log_in(phone, "bea")
    for url in ["/dashboard/", "/sell/", "/wallet/", "/inventory/", "/purchases/", "/sales/", "/reports/"]:
        fits(url)
    nav_links = phone.get_by_role("navigation", name="Main").get_by_role("link")
    for index in range(nav_links.count()):
        box = nav_links.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], nav_links.nth(index).inner_text()
    phone.get_by_role("link", name="Wallet", exact=True).click()  # the nav works with a tap
    deposit_through_the_wallet(phone, "12.50", "12.50")
    phone.goto("/")
    expect(phone.get_by_role("link", name="Road bike")).to_be_visible()
    screenshot(phone, "mobile-home")


def test_staff_see_the_cluster_and_the_platform_report(visitor):
    make_user("admin", is_staff=True)
    seller, buyer_user = make_user("sam"), make_user("bea")
    fund(buyer_user, 10_000)
    for n in range(3):
        create_item(owner=seller, title=f"Poster {n}", price=1_000 + n, category="Home")
    member = visitor()
    log_in(member, "bea")
    member.goto("/search/?q=poster&sort=price")
    member.get_by_role("link", name="Poster 0", exact=True).click()
    member.get_by_role("link", name="Buy for $10.00").click()
    member.get_by_role("button", name="Buy for $10.00").click()
    expect_message(member, "success", "Purchase complete")
    assert member.goto("/staff/cluster/").status == 404
    assert member.goto("/reports/platform/").status == 404
    expect(member.get_by_role("link", name="Cluster")).to_have_count(0)

    admin = visitor()
    log_in(admin, "admin")
    admin.get_by_role("link", name="Cluster", exact=True).click()
    expect(admin.get_by_role("heading", name="Cluster", level=1)).to_be_visible()
    for worker in all_homes():
        expect(admin.get_by_role("row", name=re.compile(rf"^{re.escape(worker)} worker"))).to_contain_text("up")
    expect(admin.get_by_text("Exact counts")).to_be_visible()
    screenshot(admin, "cluster")
    admin.get_by_role("link", name="Platform", exact=True).click()
    expect(admin.get_by_role("heading", name="Platform report")).to_be_visible()
    expect(total(admin, "Sales")).to_have_text("1")
    expect(total(admin, "GMV")).to_have_text("$10.00")
    assert admin.evaluate("Chart.getChart('gmv-chart').data.datasets[0].data.reduce((a, b) => a + b, 0)") == 10


def test_swagger_ui_renders_the_operations_under_the_content_security_policy(visitor, csp_violations):
    page = visitor()
    response = page.goto("/api/docs/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Marketplace API")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    assert operations.count() > 20
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/wallet/deposits")).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/v1/wallet/deposits").first.click()  # the UI responds
    expect(page.locator(".opblock-body").first).to_be_visible()
    screenshot(page, "api-docs")
    assert csp_violations == []


def test_the_pages_have_a_content_security_policy_without_inline_script(visitor, live_server_url):
    page = visitor()
    for path in ("/", "/login/", "/api/docs/"):
        policy = page.goto(path).headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", (path, policy)
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'", (path, policy)
        assert page.locator("script:not([src]):not([type='application/json'])").count() == 0, path
        assert page.locator("style").count() == 0 and page.locator("[style]").count() == 0, path
