import re

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView

from app.accounts import views as accounts
from app.catalog import views as catalog
from app.core import errors
from app.core import views as core
from app.orders import views as orders
from app.wallet import views as wallet

api_v1 = [
    path("auth/register", accounts.RegisterView.as_view(), name="register"),
    path("auth/token", accounts.TokenView.as_view(), name="token"),
    path("auth/logout", accounts.LogoutView.as_view(), name="logout"),
    path("auth/logout-all", accounts.LogoutAllView.as_view(), name="logout-all"),
    path("auth/password", accounts.PasswordView.as_view(), name="password"),
    path("wallet", wallet.WalletView.as_view(), name="wallet"),
    path("wallet/deposits", wallet.DepositView.as_view(), name="deposits"),
    path("wallet/ledger", wallet.LedgerView.as_view(), name="ledger"),
    path("items", catalog.ItemListView.as_view(), name="items"),
    path("items/<str:item_id>", catalog.ItemDetailView.as_view(), name="item"),
    path("items/<str:item_id>/photos", catalog.PhotoListView.as_view(), name="item-photos"),
    path("items/<str:item_id>/photos/order", catalog.PhotoOrderView.as_view(), name="item-photos-order"),
    path("items/<str:item_id>/photos/<str:photo_id>", catalog.PhotoDetailView.as_view(), name="item-photo"),
    path("listings", catalog.ListingSearchView.as_view(), name="listings"),
    path("purchases", orders.PurchaseListView.as_view(), name="purchases"),
    path("sales", orders.SaleListView.as_view(), name="sales"),
    path("me/overview", accounts.OverviewView.as_view(), name="overview"),
]

urlpatterns = [
    path("health/", core.health, name="health"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/v1/reports/", include("app.reports.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", core.SwaggerUIView.as_view(url_name="schema"), name="docs"),
    path("api/partner/v1/", include("app.partners.urls")),
    path("admin/", admin.site.urls),
    path("", include("app.web.urls")),  # the web pages; /api/, /admin/ and /health/ come first
    # Anything else under /api/ is a JSON 404, also with DEBUG on (Django's debug page is HTML).
    re_path(r"^api/", errors.not_found),
]

# Uploaded photos: served by Django only in development (`make run`, the tests' server). In production a web
# server or the object storage serves MEDIA_URL (README, "Photos"), never Django.
if settings.SERVE_MEDIA:
    urlpatterns.insert(0, re_path(rf"^{re.escape(settings.MEDIA_URL.lstrip('/'))}(?P<path>.*)$", serve,
                                  {"document_root": settings.MEDIA_ROOT}))

handler404 = "app.core.errors.not_found"
handler500 = "app.core.errors.server_error"
