from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from app.core.money import MoneyField, format_money
from app.core.pagination import query_data

from .selectors import JSON_ROW_LIMIT, PERIODS

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
        if "from" in attrs:
            first = attrs["from"]
        else:
            try:
                first = last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
            except OverflowError:  # the default range would start before 0001-01-01
                raise serializers.ValidationError(
                    {"to": [f"Without `from`, `to` must be at least {DEFAULT_RANGE_DAYS - 1} days after 0001-01-01."]}
                ) from None
        if first > last:
            raise serializers.ValidationError({"from": ["Must be on or before `to`."]})
        if (last - first).days + 1 > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"from": [f"A report covers at most {MAX_RANGE_DAYS} days."]})
        return {**attrs, "from": first, "to": last}


def valid_params(request):
    params = ReportParams(data=query_data(request))
    params.is_valid(raise_exception=True)
    return params.validated_data


def figures_out(figures, money):
    """A period's or the totals' figures for the API: amounts as "12.50" strings, the period as an ISO date."""
    return {
        name: format_money(value) if name in money else value.isoformat() if name == "period" else value
        for name, value in figures.items()
    }


# The shapes of the JSON reports, for the OpenAPI description only: the views build the bodies as dicts.


def _shape(name, fields, doc):
    # type() rather than a class statement: one of the fields is `from`, a Python keyword.
    return type(name, (serializers.Serializer,), {"__doc__": doc, **fields})


def _report_out(name, figures, extra):
    """The report `name` ("Sales"): its heading, figures {field name: field class} in total and per period, `extra`."""
    def fields():
        return {key: field() for key, field in figures.items()}

    totals = _shape(f"{name}Figures", fields(), "Figures over the whole range.")
    period = _shape(
        f"{name}Period", {"period": serializers.DateField(help_text="Its first day."), **fields()},
        "Figures of one period that has rows.",
    )
    return _shape(f"{name}Report", {
        "report": serializers.CharField(),
        "from": serializers.DateField(),
        "to": serializers.DateField(),
        "group_by": serializers.ChoiceField(choices=list(PERIODS)),
        "currency": serializers.CharField(),
        "totals": totals(),
        "periods": period(many=True, help_text="Oldest first."),
        **extra,
    }, f"The {name.lower()} report.")


def user_report_out(name, figures, row_out):
    return _report_out(name, figures, {
        "rows": row_out(many=True, help_text=f"Newest first, at most {JSON_ROW_LIMIT}."),
        "rows_truncated": serializers.BooleanField(),
        "all_rows_csv": serializers.CharField(
            required=False, help_text="Only when rows_truncated: the link of the CSV export of every row."
        ),
    })


COUNT_AND_AMOUNT = {"count": serializers.IntegerField, "amount": MoneyField}
TRANSACTION_FIGURES = {
    "count": serializers.IntegerField,
    "deposits": MoneyField,
    "purchases": MoneyField,  # negative, as in the ledger
    "sales": MoneyField,
    "net": MoneyField,
}
PLATFORM_FIGURES = {
    "sales": serializers.IntegerField,
    "gmv": MoneyField,
    "active_sellers": serializers.IntegerField,
    "active_buyers": serializers.IntegerField,
}
CategoryOut = _shape(
    "CategoryOut",
    {"category": serializers.CharField(), "sales": serializers.IntegerField(), "gmv": MoneyField()},
    "One of the ten categories with the highest GMV.",
)
PlatformReportOut = _report_out("Platform", PLATFORM_FIGURES, {"top_categories": CategoryOut(many=True)})
