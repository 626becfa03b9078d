from django.contrib import admin, messages

from .keys import revoke_key, rotate_key
from .models import ApiKey, Partner, WebhookEndpoint


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys come from `create_partner` or the rotate action: the plain key is shown once, then only its hash exists."""

    list_display = ("prefix", "partner", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = ("partner",)
    readonly_fields = ("partner", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    fields = ("partner", "prefix", "scopes", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke", "rotate"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at=None):
            revoke_key(key.prefix)
        messages.success(request, "Revoked.")

    @admin.action(description="Rotate the selected keys (revoke and issue replacements)")
    def rotate(self, request, queryset):
        for key in queryset.filter(revoked_at=None):
            new, plaintext = rotate_key(key.prefix)
            messages.warning(request, f"New key for {new.partner} (shown once, store it now): {plaintext}")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "partner", "events", "is_active", "consecutive_failures", "disabled_at")
    list_filter = ("is_active", "partner")
    exclude = ("secret",)
