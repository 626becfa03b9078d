"""{{ day|period_label:group_by }}: a report period named by its first day, as in the reports' tables and charts."""
from django import template

register = template.Library()


@register.filter
def period_label(day, group_by):
    """2026-11-23 for a day or the week starting that day; 2026-11 for a month."""
    return day.strftime("%Y-%m") if group_by == "month" else day.isoformat()
