from django.core.management.base import BaseCommand, CommandError

from app.core.errors import ServiceError
from app.partners.keys import revoke_key, rotate_key
from app.partners.models import ApiKey


class Command(BaseCommand):
    help = "List partner API keys (prefix, created, last used), or revoke or rotate one by its prefix."

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--revoke", metavar="PREFIX")
        action.add_argument("--rotate", metavar="PREFIX", help="revoke it and print a replacement with the same scopes")
        parser.add_argument("--partner", help="only this partner's keys")

    def handle(self, *args, revoke, rotate, partner, **options):
        try:
            if revoke:
                key = revoke_key(revoke)
                self.stdout.write(f"revoked {key.prefix} of {key.partner}")
                return
            if rotate:
                key, plaintext = rotate_key(rotate)
                self.stdout.write(f"revoked {rotate}; new key {key.prefix} of {key.partner} (store it now):")
                self.stdout.write(plaintext)
                return
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        keys = ApiKey.objects.select_related("partner").order_by("partner__name", "created_at")
        if partner:
            keys = keys.filter(partner__name=partner)
        self.stdout.write(f"{'partner':<20} {'prefix':<10} {'scopes':<32} {'created':<20} {'last used':<20} state")
        for key in keys:
            used = key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never"
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "live"
            self.stdout.write(
                f"{key.partner.name:<20} {key.prefix:<10} {','.join(key.scopes):<32} "
                f"{key.created_at:%Y-%m-%d %H:%M}     {used:<20} {state}"
            )
