from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("transactions", views.TransactionsReportView.as_view(), name="transactions"),
    path("sales", views.SalesReportView.as_view(), name="sales"),
    path("purchases", views.PurchasesReportView.as_view(), name="purchases"),
    path("platform", views.PlatformReportView.as_view(), name="platform"),
]
