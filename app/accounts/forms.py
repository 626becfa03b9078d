"""Login forms' shared part: the login limits of app.accounts.throttles."""
from django import forms

from .throttles import login_wait


class ThrottledLoginMixin:
    """An AuthenticationForm under the API's login limits (per username and per client address, shared with it)."""

    throttled_message = ("Too many login attempts for this username or from your network. "
                         "Wait %(seconds)s seconds, then try again.")

    def clean(self):
        # Counted before the password is checked: once over the limit, not even the right password gets in.
        seconds = login_wait(self.request)
        if seconds is not None:
            raise forms.ValidationError(self.throttled_message, code="throttled", params={"seconds": seconds})
        return super().clean()
