"""Fill the cluster with demo data: users, deposits, items on every worker, and some sales.

    python manage.py seed_demo --users 50 --items 500 [--sales K] [--seed 42] [--if-empty]

Money only moves through the services (app.wallet.services.deposit,
app.orders.services.buy_listing), so wallets, ledgers, purchases and sales stay
consistent; users and items, which move no money, are bulk-inserted for speed.
"""
import random
import time
from collections import defaultdict

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError

from app.catalog.images import process_image, save_rendition
from app.catalog.models import Item, Photo
from app.core.demo_data import DEMO_PASSWORD, demo_deposit, demo_item, demo_photo_bytes
from app.core.errors import ServiceError
from app.orders.services import buy_listing
from app.wallet.services import deposit
from sharding.fanout import fan_out
from sharding.placement import all_workers, node_for_id, node_for_user
from sharding.transactions import LockTimeoutError, atomic_on_nodes

User = get_user_model()

DEMO_LOGINS = [("alice", False), ("bob", True)]  # (username, is_staff); password DEMO_PASSWORD
ITEM_BATCH = 1000
USER_BATCH = 1000
DEPOSITS_PER_TRANSACTION = 200
DEFAULT_SALES_CAP = 5000
UNLISTED_SHARE = 0.10
PICK_TRIES = 50  # random listings tried per sale before giving up on an affordable one
DEFAULT_PHOTOS_CAP = 1000  # a photo each is two JPEG encodings: 100,000 items would take many minutes


class Progress:
    """An in-place progress bar: `items  [########------------] 41% 41000/100000`."""

    WIDTH = 20

    def __init__(self, stream, label, total, enabled=True):
        self.stream, self.label, self.total, self.enabled = stream, label, total, enabled
        self.done, self.last_drawn = 0, 0.0
        self.started = time.monotonic()
        self.draw(force=True)

    def advance(self, count=1):
        self.done += count
        self.draw()

    def draw(self, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_drawn < 0.1 and self.done < self.total:
            return
        self.last_drawn = now
        fraction = 1.0 if self.total == 0 else min(1.0, self.done / self.total)
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label:<8} [{bar}] {int(fraction * 100):3d}% {self.done}/{self.total}", ending="")
        self.stream.flush()

    def finish(self, note=""):
        self.draw(force=True)
        if self.enabled:
            elapsed = time.monotonic() - self.started
            self.stream.write(f"  {elapsed:.1f}s{'  ' + note if note else ''}")


def chunks(sequence, size):
    for start in range(0, len(sequence), size):
        yield sequence[start:start + size]


class Command(BaseCommand):
    help = "Create demo users (plus alice/bob), deposits, items on every worker and some sales."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, required=True, help="demo users demo1..demoN to create (N >= 2)")
        parser.add_argument("--items", type=int, required=True, help="items to create, spread over all users")
        parser.add_argument(
            "--sales", type=int, default=None,
            help="purchases to make through the real purchase path "
            f"(default items // 20, at least 1, at most {DEFAULT_SALES_CAP})",
        )
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing if any worker already has items"
        )
        parser.add_argument(
            "--photos", type=int, default=None,
            help=f"items that get a demo photo (default every item, at most {DEFAULT_PHOTOS_CAP}); 0 for none",
        )

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            # Its logins (staff bob among them) share one published password: never on a production site.
            raise CommandError("seed_demo makes demo accounts with a published password (staff bob among them): "
                               "it does not run with production settings (MARKETPLACE_ENV=production)")
        n_users, n_items, n_sales = options["users"], options["items"], options["sales"]
        if n_users is None or n_users < 2:
            raise CommandError(f"--users must be at least 2 (buyers and sellers must differ), not {n_users}")
        if n_items is None or n_items < 0:
            raise CommandError(f"--items must be 0 or more, not {n_items}")
        if n_sales is not None and n_sales < 0:
            raise CommandError(f"--sales must be 0 or more, not {n_sales}")
        if n_sales is None:
            n_sales = min(DEFAULT_SALES_CAP, max(1, n_items // 20))

        if options["if_empty"]:
            found = fan_out(lambda alias: Item.objects.using(alias).exists()).results
            nonempty = sorted(alias for alias, has_items in found.items() if has_items)
            if nonempty:
                self.stdout.write(
                    f"seed_demo: items exist already (on {', '.join(nonempty)}); nothing to do (--if-empty)"
                )
                return

        self.rng = random.Random(options["seed"])
        self.show_progress = options["verbosity"] >= 1
        started = time.monotonic()

        users, created, logins = self.create_users(n_users)
        deposited = self.make_deposits(users)
        items_per_node, listings = self.create_items(users, n_items)
        n_photos = min(n_items, DEFAULT_PHOTOS_CAP) if options.get("photos") is None else max(0, options["photos"])
        photos = self.create_photos(n_photos)
        sales, skipped = self.make_sales(users, listings, n_sales, deposited)

        self.summary(users, created, logins, items_per_node, sales, skipped, n_sales, time.monotonic() - started)
        self.stdout.write(f"  photos: {photos} items with a demo photo")

    # Users --------------------------------------------------------------

    def create_users(self, n_users):
        """The run's users (alice, bob, demo1..demoN), creating those missing; returns (users, created, logins)."""
        password = make_password(DEMO_PASSWORD)  # one Argon2 hash for everyone: hashing 10,000 would take minutes
        wanted = [(name, staff) for name, staff in DEMO_LOGINS] + [(f"demo{i}", False) for i in range(1, n_users + 1)]
        names = [name for name, _ in wanted]
        existing = set()
        for batch in chunks(names, USER_BATCH):
            existing.update(
                name.lower() for name in User.objects.filter(username__in=batch).values_list("username", flat=True)
            )

        progress = Progress(self.stderr, "users", len(wanted), self.show_progress)
        progress.advance(len(existing))
        missing = [(name, staff) for name, staff in wanted if name.lower() not in existing]
        # alice and bob come first in one INSERT: consecutive ids, so (with round-robin
        # placement) different logical shards on different workers.
        for batch in chunks(missing, USER_BATCH):
            User.objects.bulk_create(
                [
                    User(username=name, email=f"{name}@example.com", password=password, is_staff=staff)
                    for name, staff in batch
                ],
                ignore_conflicts=True,  # a concurrent or case-variant duplicate is simply skipped
            )
            progress.advance(len(batch))
        progress.finish()

        by_name = {}
        for batch in chunks(names, USER_BATCH):
            for user in User.objects.filter(username__in=batch).only("id", "username"):
                by_name[user.username] = user
        users = [by_name[name] for name in names if name in by_name]
        created = len(users) - len(existing)
        logins = {name: by_name.get(name) for name, _ in DEMO_LOGINS}
        return users, max(0, created), logins

    # Deposits -----------------------------------------------------------

    def make_deposits(self, users):
        """One deposit per user through the wallet service; returns {user_id: amount}."""
        amounts = {user.id: demo_deposit(self.rng) for user in users}
        by_node = defaultdict(list)
        for user in users:
            by_node[node_for_user(user.id)].append(user.id)
        progress = Progress(self.stderr, "deposits", len(users), self.show_progress)
        for alias in sorted(by_node):
            for batch in chunks(by_node[alias], DEPOSITS_PER_TRANSACTION):
                # Every user here lives on `alias`: one local transaction per batch.
                with atomic_on_nodes([alias]):
                    for user_id in batch:
                        deposit(user_id, amounts[user_id])
                progress.advance(len(batch))
        progress.finish()
        return amounts

    # Items --------------------------------------------------------------

    def create_items(self, users, n_items):
        """n_items items with owners drawn uniformly from users, bulk-inserted on each owner's worker.

        Returns ({alias: count}, [(item id, owner id, price) of every listed item]).
        """
        per_node = {alias: 0 for alias in all_workers()}
        listings = []
        self.created_items = []
        pending = defaultdict(list)
        node_of = {user.id: node_for_user(user.id) for user in users}
        progress = Progress(self.stderr, "items", n_items, self.show_progress)

        def flush(alias):
            batch, pending[alias] = pending[alias], []
            if not batch:
                return
            Item.objects.using(alias).bulk_create(batch)  # ids come back from the id trigger
            listings.extend((item.id, item.user_id, item.price) for item in batch if item.status == Item.LISTED)
            self.created_items.extend(batch)
            per_node[alias] += len(batch)
            progress.advance(len(batch))

        for _ in range(n_items):
            owner = self.rng.choice(users)
            title, description, category, price = demo_item(self.rng)
            alias = node_of[owner.id]
            pending[alias].append(Item(
                user_id=owner.id, owner_username=owner.username, title=title, description=description,
                category=category, price=price,
                status=Item.UNLISTED if self.rng.random() < UNLISTED_SHARE else Item.LISTED,
            ))
            if len(pending[alias]) >= ITEM_BATCH:
                flush(alias)
        for alias in list(pending):
            flush(alias)
        progress.finish()
        return per_node, listings

    # Photos -------------------------------------------------------------

    def create_photos(self, n_photos):
        """A demo photo (app.core.demo_data.demo_photo_bytes, through the upload's own checks and re-encoding)
        for the first n_photos items made; returns how many were made."""
        items = self.created_items[:n_photos]
        progress = Progress(self.stderr, "photos", len(items), self.show_progress)
        made = {}  # (title, category) -> processed image: titles repeat, the pictures can too (files do not)
        rows = defaultdict(list)
        for item in items:
            key = (item.title, item.category)
            if key not in made:
                made[key] = process_image(ContentFile(demo_photo_bytes(*key), name="demo.jpg"))
            image = made[key]
            rows[item._state.db].append(Photo(
                user_id=item.user_id, item_id=item.id, position=0,
                image=save_rendition(image.full), width=image.full.width, height=image.full.height,
                thumbnail=save_rendition(image.thumbnail), thumbnail_width=image.thumbnail.width,
                thumbnail_height=image.thumbnail.height,
            ))
            progress.advance()
        for alias, batch in rows.items():
            for part in chunks(batch, ITEM_BATCH):
                Photo.objects.using(alias).bulk_create(part)
        progress.finish()
        return len(items)

    # Sales --------------------------------------------------------------

    def make_sales(self, users, listings, n_sales, deposited):
        """Up to n_sales purchases through buy_listing; returns (made, skipped)."""
        progress = Progress(self.stderr, "sales", n_sales, self.show_progress)
        balance = dict(deposited)  # a lower bound of each wallet: pick listings the buyer can afford
        pool = list(listings)
        made = skipped = 0
        attempts_left = 2 * n_sales + 10
        while made < n_sales and attempts_left > 0 and pool:
            attempts_left -= 1
            buyer = self.rng.choice(users)
            index = self._pick_listing(pool, buyer.id, balance.get(buyer.id, 0))
            if index is None:
                skipped += 1
                continue
            listing_id, seller_id, price = pool[index]
            pool[index] = pool[-1]  # whatever happens, don't try this listing again
            pool.pop()
            try:
                with atomic_on_nodes([node_for_user(buyer.id), node_for_id(listing_id)]):
                    buy_listing(buyer, listing_id, price)
            except (ServiceError, LockTimeoutError):
                skipped += 1
                continue
            balance[buyer.id] = balance.get(buyer.id, 0) - price
            balance[seller_id] = balance.get(seller_id, 0) + price
            made += 1
            progress.advance()
        progress.finish(f"({skipped} skipped)" if skipped else "")
        return made, skipped

    def _pick_listing(self, pool, buyer_id, budget):
        for _ in range(PICK_TRIES):
            index = self.rng.randrange(len(pool))
            _, seller_id, price = pool[index]
            if seller_id != buyer_id and price <= budget:
                return index
        return None

    # Summary ------------------------------------------------------------

    def summary(self, users, created, logins, items_per_node, sales, skipped, wanted_sales, elapsed):
        write = self.stdout.write
        write(f"seed_demo done in {elapsed:.1f}s")
        write(f"  users:  {len(users)} ({created} created, {len(users) - created} already there)")
        total = sum(items_per_node.values())
        write(f"  items:  {total} created: " + ", ".join(f"{alias} {count}" for alias, count in items_per_node.items()))
        write(f"  sales:  {sales} made of {wanted_sales} wanted ({skipped} skipped)")
        write(f"  demo logins (password {DEMO_PASSWORD}):")
        for name, staff in DEMO_LOGINS:
            user = logins.get(name)
            if user is None:
                write(f"    {name}: could not be created (a clashing username or email exists)")
                continue
            write(f"    {name}{' (staff)' if staff else ''}: user id {user.id} on {node_for_user(user.id)}")
        alice, bob = logins.get("alice"), logins.get("bob")
        if alice and bob and node_for_user(alice.id) == node_for_user(bob.id):
            write(
                f"  note: alice and bob both live on {node_for_user(alice.id)}; "
                "their purchases won't use two-phase commit"
            )
