"""The books must balance: checks across every worker, read-only.

- each wallet's balance equals the sum of its ledger, and is not negative;
- each ledger entry's balance_after follows from the one before it;
- money is neither created nor lost: all balances add up to all deposits;
- every sale has its purchase and every purchase its sale, with the same price,
  and each has its ledger entry on its side.
Cross-worker checks compare rows read from different workers one after the
other, so run the audit on a quiet cluster: a purchase committing during the
audit may show as a transient mismatch.
"""
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Sum

from app.orders.models import Purchase, Sale
from app.wallet.models import LedgerEntry, Wallet
from sharding.fanout import fan_out


@dataclass
class AuditReport:
    nodes: dict = field(default_factory=dict)  # alias -> counts
    problems: list = field(default_factory=list)
    total_balance: int = 0
    total_deposits: int = 0

    @property
    def ok(self):
        return not self.problems


def _audit_node(alias):
    problems = []
    ledger_sums = dict(
        LedgerEntry.objects.using(alias).values("user_id").annotate(total=Sum("amount")).values_list("user_id", "total")
    )
    wallets = dict(Wallet.objects.using(alias).values_list("user_id", "balance"))
    for user_id in sorted(set(wallets) | set(ledger_sums)):
        balance, ledger = wallets.get(user_id), ledger_sums.get(user_id, 0)
        if balance is None:
            problems.append(f"{alias}: user {user_id} has ledger entries but no wallet")
        elif balance != ledger:
            problems.append(f"{alias}: user {user_id} wallet {balance} != ledger sum {ledger}")
        if balance is not None and balance < 0:
            problems.append(f"{alias}: user {user_id} has a negative balance {balance}")
    running = defaultdict(int)
    for entry in LedgerEntry.objects.using(alias).order_by("user_id", "id").iterator(chunk_size=5000):
        running[entry.user_id] += entry.amount
        if entry.balance_after != running[entry.user_id]:
            problems.append(
                f"{alias}: ledger entry {entry.id} says balance_after {entry.balance_after}, "
                f"the ledger gives {running[entry.user_id]}"
            )
    entries = {
        (kind, ref): amount
        for kind, ref, amount in LedgerEntry.objects.using(alias)
        .exclude(reference_id=None).values_list("kind", "reference_id", "amount")
    }
    purchases = list(Purchase.objects.using(alias).values_list("id", "source_item_id", "price"))
    sales = list(Sale.objects.using(alias).values_list("id", "item_id", "purchase_id", "price"))
    for purchase_id, _, price in purchases:
        if entries.get((LedgerEntry.PURCHASE, purchase_id)) != -price:
            problems.append(f"{alias}: purchase {purchase_id} has no matching ledger debit of {price}")
    for sale_id, _, _, price in sales:
        if entries.get((LedgerEntry.SALE, sale_id)) != price:
            problems.append(f"{alias}: sale {sale_id} has no matching ledger credit of {price}")
    deposits = (
        LedgerEntry.objects.using(alias).filter(kind=LedgerEntry.DEPOSIT).aggregate(total=Sum("amount"))["total"] or 0
    )
    return {
        "problems": problems, "purchases": purchases, "sales": sales, "deposits": deposits,
        "balance": sum(wallets.values()), "wallets": len(wallets),
        "ledger_entries": LedgerEntry.objects.using(alias).count(),
    }


def audit_books():
    per_node = fan_out(_audit_node, timeout=600).results
    report = AuditReport()
    purchases, sales = {}, {}
    for alias, found in sorted(per_node.items()):
        report.problems.extend(found["problems"])
        report.total_balance += found["balance"]
        report.total_deposits += found["deposits"]
        purchases.update({pid: (source, price) for pid, source, price in found["purchases"]})
        sales.update({purchase_id: (item_id, price) for _, item_id, purchase_id, price in found["sales"]})
        report.nodes[alias] = {
            "wallets": found["wallets"], "ledger_entries": found["ledger_entries"],
            "purchases": len(found["purchases"]), "sales": len(found["sales"]),
        }
    for purchase_id, (source_item_id, price) in purchases.items():
        if sales.get(purchase_id) != (source_item_id, price):
            report.problems.append(f"purchase {purchase_id} of listing {source_item_id} has no matching sale")
    for purchase_id, (item_id, _) in sales.items():
        if purchase_id not in purchases:
            report.problems.append(f"sale of listing {item_id} names purchase {purchase_id}, which does not exist")
    if report.total_balance != report.total_deposits:
        report.problems.append(
            f"balances add up to {report.total_balance} but deposits to {report.total_deposits}: "
            "money was created or lost"
        )
    return report
