from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm

from .forms import ThrottledLoginMixin


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's login form under the site's login limits (per username and per address, shared with the API)."""


admin.site.login_form = AdminLoginForm
