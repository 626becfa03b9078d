import csv
import io
import itertools

from django.http import StreamingHttpResponse
from django.utils.http import urlencode
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.error_codes import CommonErrorCode
from app.core.fields import UserRefField
from app.core.money import CURRENCY
from app.core.negotiation import FirstRendererAlways
from app.core.openapi import NEEDS_LOGIN, TRY_AGAIN, errors
from app.core.text import spreadsheet_cell
from app.core.throttling import ThrottledAfterValidation
from app.orders.serializers import PurchaseOut, SaleOut
from app.wallet.serializers import LedgerEntryOut

from . import selectors
from .serializers import (
    COUNT_AND_AMOUNT,
    TRANSACTION_FIGURES,
    PlatformReportOut,
    ReportParams,
    figures_out,
    user_report_out,
    valid_params,
)


def _csv_chunks(header, batches):
    """The header line, then one string of CSV lines per batch of rows (lists of cells)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for rows in itertools.chain([[header]], batches):
        writer.writerows([spreadsheet_cell(value) for value in row] for row in rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(filename, header, batches):
    # Batches are read lazily while the response is sent, so memory stays at one batch.
    response = StreamingHttpResponse(_csv_chunks(header, batches), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_header(serializer_class):
    """The serializer's fields; a user reference {"id", "username"} makes two columns (buyer_id, buyer_username)."""
    for name, field in serializer_class().fields.items():
        yield from (f"{name}_id", f"{name}_username") if isinstance(field, UserRefField) else (name,)


def _csv_row(data):
    """One serialized row as cells in _csv_header's order: the same values as the JSON rows."""
    return [cell for value in data.values() for cell in (value.values() if isinstance(value, dict) else (value,))]


def _heading(name, params):
    return {
        "report": name, "from": params["from"].isoformat(), "to": params["to"].isoformat(),
        "group_by": params["group_by"], "currency": CURRENCY,
    }


def _filename(name, params):
    return f"{name}-{params['from'].isoformat()}-to-{params['to'].isoformat()}.csv"


class UserReportView(ThrottledAfterValidation, APIView):
    """One of the logged-in user's reports, read on the user's worker (counted in the limits once its parameters
    are good: a refused one makes no query)."""

    content_negotiation_class = FirstRendererAlways  # ?format=csv is ours, not DRF's
    report = None  # a selectors.UserReport
    row_out = None  # the serializer of its rows, the one its list endpoint uses

    def get(self, request):
        params = valid_params(request)
        self.throttle(request)
        first, last = params["from"], params["to"]
        if params["format"] == "csv":
            batches = selectors.newest_first_batches(selectors.user_rows(request.user.id, self.report, first, last))
            return csv_response(
                _filename(self.report.name, params), list(_csv_header(self.row_out)),
                ([_csv_row(row) for row in self.row_out(batch, many=True).data] for batch in batches),
            )
        report = selectors.user_report(request.user.id, self.report, first, last, params["group_by"])
        body = {
            **_heading(self.report.name, params),
            "totals": figures_out(report["totals"], self.report.money),
            "periods": [figures_out(period, self.report.money) for period in report["periods"]],
            "rows": self.row_out(report["rows"], many=True).data,
            "rows_truncated": report["rows_truncated"],
        }
        if report["rows_truncated"]:
            csv_query = urlencode({"from": first.isoformat(), "to": last.isoformat(), "format": "csv"})
            body["all_rows_csv"] = f"{request.path}?{csv_query}"
        return Response(body)


def report_schema(summary, report_out, *more_errors, csv="every row"):
    """extend_schema_view for a report's GET: JSON, or CSV with ?format=csv."""
    return extend_schema_view(get=extend_schema(
        summary=summary,
        parameters=[ReportParams],
        responses={
            (200, "application/json"): report_out,
            (200, "text/csv"): OpenApiTypes.STR,
            **errors((400, CommonErrorCode.VALIDATION_ERROR), NEEDS_LOGIN, *more_errors),
        },
        description=(
            "`from` and `to` are inclusive UTC days (by default the 30 days up to today, at most 3660 days); "
            f"periods start on their first day (a week on Monday). `format=csv` downloads {csv} as text/csv.\n\n"
            "Rules between the parameters, which OpenAPI cannot express (a 400 `validation_error` otherwise): "
            "`from` is on or before `to` (today without `to`), the range covers at most 3660 days, and without "
            "`from`, `to` is at least 29 days after 0001-01-01."
        ),
    ))


@report_schema(
    "My ledger: deposits, purchases and sales", user_report_out("Transactions", TRANSACTION_FIGURES, LedgerEntryOut),
)
class TransactionsReportView(UserReportView):
    report, row_out = selectors.TRANSACTIONS, LedgerEntryOut


@report_schema("My sales", user_report_out("Sales", COUNT_AND_AMOUNT, SaleOut))
class SalesReportView(UserReportView):
    report, row_out = selectors.SALES, SaleOut


@report_schema("My purchases", user_report_out("Purchases", COUNT_AND_AMOUNT, PurchaseOut))
class PurchasesReportView(UserReportView):
    report, row_out = selectors.PURCHASES, PurchaseOut


@report_schema(
    "The whole platform's sales, GMV and active users (staff only)", PlatformReportOut,
    (403, CommonErrorCode.PERMISSION_DENIED), TRY_AGAIN, csv="the periods",
)
class PlatformReportView(ThrottledAfterValidation, APIView):
    """Sales, GMV and active users of the whole platform, summed over every worker; staff only."""

    content_negotiation_class = FirstRendererAlways  # ?format=csv is ours, not DRF's
    permission_classes = [IsAdminUser]

    def get(self, request):
        params = valid_params(request)
        self.throttle(request)
        report = selectors.platform_report(params["from"], params["to"], params["group_by"])  # FanOutError -> 503
        periods = [figures_out(period, selectors.PLATFORM_MONEY) for period in report["periods"]]
        if params["format"] == "csv":
            header = ["period", *selectors.PLATFORM_FIGURES]
            return csv_response(_filename("platform", params), header, [[list(period.values()) for period in periods]])
        return Response({
            **_heading("platform", params),
            "totals": figures_out(report["totals"], selectors.PLATFORM_MONEY),
            "periods": periods,
            "top_categories": [
                figures_out(category, selectors.PLATFORM_MONEY) for category in report["top_categories"]
            ],
        })
