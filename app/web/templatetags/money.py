"""{{ amount|money }}: integer minor units as "$12.50" (negative: "-$12.50")."""
from django import template

from app.core.money import format_money

register = template.Library()


@register.filter
def money(minor):
    if minor is None or minor == "":
        return ""
    minor = int(minor)
    sign = "-" if minor < 0 else ""
    return f"{sign}${format_money(abs(minor))}"
