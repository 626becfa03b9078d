import sys

from django.core.management.base import BaseCommand

from app.core.audit import audit_books
from app.core.money import format_money


class Command(BaseCommand):
    help = (
        "Check on every worker that the books balance (wallets vs ledgers, sales vs purchases). "
        "Exit 1 on any mismatch."
    )

    def handle(self, *args, **options):
        report = audit_books()
        for alias, counts in report.nodes.items():
            self.stdout.write(
                f"{alias}: {counts['wallets']} wallets, {counts['ledger_entries']} ledger entries, "
                f"{counts['purchases']} purchases, {counts['sales']} sales"
            )
        self.stdout.write(
            f"total balances {format_money(report.total_balance)}, total deposits {format_money(report.total_deposits)}"
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS("audit passed: the books balance"))
            return
        for problem in report.problems[:100]:
            self.stderr.write(f"MISMATCH {problem}")
        if len(report.problems) > 100:
            self.stderr.write(f"... and {len(report.problems) - 100} more")
        self.stderr.write(self.style.ERROR(f"audit failed: {len(report.problems)} problems"))
        sys.exit(1)
