from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views
from .forms import LoginForm

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("items/<int:item_id>/", views.item_detail, name="item"),
    path("items/<int:item_id>/buy/", views.buy, name="buy"),
    path("items/<int:item_id>/edit/", views.edit, name="edit"),
    path("items/<int:item_id>/status/", views.change_status, name="status"),
    path("items/<int:item_id>/delete/", views.delete, name="delete"),
    path("items/<int:item_id>/photos/<int:photo_id>/remove/", views.photo_remove, name="photo_remove"),
    path("items/<int:item_id>/photos/<int:photo_id>/move/", views.photo_move, name="photo_move"),
    path("sell/", views.sell, name="sell"),
    path("inventory/", views.inventory, name="inventory"),
    path("wallet/", views.wallet_page, name="wallet"),
    path("purchases/", views.purchases, name="purchases"),
    path("sales/", views.sales, name="sales"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("reports/", views.reports, name="reports"),
    path("reports/platform/", views.platform_report_page, name="platform_report"),
    path("staff/cluster/", views.cluster_page, name="cluster"),
    path("account/", views.account, name="account"),
    path("account/tokens/revoke/", views.revoke_token_page, name="revoke_token"),
    path("account/tokens/revoke-all/", views.revoke_all_tokens_page, name="revoke_all_tokens"),
    path("account/password/", views.password_change, name="password_change"),
    path("password-reset/", views.password_reset, name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(template_name="web/password_reset_done.html"),
         name="password_reset_done"),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name="web/password_reset_complete.html"), name="password_reset_complete"),
    path("password-reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(
        template_name="web/password_reset_confirm.html", success_url=reverse_lazy("web:password_reset_complete")),
        name="password_reset_confirm"),
    path("register/", views.register, name="register"),
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html", authentication_form=LoginForm,
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="web:home"), name="logout"),
]
