from django.urls import path, re_path

from . import views, webhook_views

app_name = "partner"

urlpatterns = [
    path("products", views.ProductFeedView.as_view(), name="products"),
    path("products/<str:item_id>", views.ProductDetailView.as_view(), name="product"),
    re_path(r"^feeds/google\.(?P<extension>tsv|xml)$", views.GoogleFeedView.as_view(), name="google-feed"),
    # Webhook endpoints (app/partners/webhook_views.py)
    path("webhooks", webhook_views.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/<str:endpoint_id>", webhook_views.WebhookDetailView.as_view(), name="webhook"),
]
