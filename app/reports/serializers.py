from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from app.core.money import format_money

from .selectors import PERIODS

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 3660


class ReportParams(serializers.Serializer):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD (inclusive UTC days, by default the last 30 up to today)&group_by=&format=."""

    to = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    group_by = serializers.ChoiceField(choices=list(PERIODS), required=False, default="day")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")

    def get_fields(self):
        # `from` is a Python keyword, so it can't be declared in the class body.
        return {"from": serializers.DateField(required=False, input_formats=["%Y-%m-%d"]), **super().get_fields()}

    def validate(self, attrs):
        last = attrs.get("to") or timezone.now().date()
        first = attrs.get("from") or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if first > last:
            raise serializers.ValidationError({"from": ["Must be on or before `to`."]})
        if (last - first).days + 1 > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"from": [f"A report covers at most {MAX_RANGE_DAYS} days."]})
        return {**attrs, "from": first, "to": last}


def valid_params(request):
    params = ReportParams(data=request.query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data


def figures_out(figures, money):
    """A period's or the totals' figures for the API: amounts as "12.50" strings, the period as an ISO date."""
    return {
        name: format_money(value) if name in money else value.isoformat() if name == "period" else value
        for name, value in figures.items()
    }
