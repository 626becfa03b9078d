from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from app.core.errors import ServiceError
from app.partners.keys import issue_key
from app.partners.models import SCOPES, Partner


class Command(BaseCommand):
    help = "Register a partner store and print its first API key (shown once; only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scopes", default="products:read", help=f"comma-separated, from: {', '.join(SCOPES)}")

    def handle(self, *args, name, scopes, **options):
        try:
            with transaction.atomic():
                partner = Partner.objects.create(name=name)
                key, plaintext = issue_key(partner, [s.strip() for s in scopes.split(",") if s.strip()])
        except IntegrityError:
            raise CommandError(
                f"a partner named {name!r} exists already; use rotate_partner_key for a new key"
            ) from None
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"partner {partner.name} (id {partner.id}), key prefix {key.prefix}, scopes {','.join(key.scopes)}"
        )
        self.stdout.write("API key (store it now, it is not shown again):")
        self.stdout.write(plaintext)
