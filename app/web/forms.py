"""Django forms for the web pages, with the same rules as the API's serializers."""
import uuid

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import password_validators_help_text_html
from rest_framework import serializers

from app.accounts.forms import ThrottledLoginMixin
from app.accounts.serializers import RegistrationIn
from app.catalog.serializers import MAX_PRICE_MINOR
from app.core.idempotency import KEY_PATTERN
from app.core.money import MoneyField, format_money
from app.core.text import clean_text
from app.wallet.serializers import MAX_DEPOSIT_MINOR

CATEGORIES = ["Electronics", "Books", "Home", "Clothing", "Sports", "Toys", "Music", "Other"]


def new_idempotency_key():
    return f"web-{uuid.uuid4().hex}"


class MoneyFormField(forms.CharField):
    """ "12.50" in the form, minor units (1250) in cleaned_data: app.core.money.MoneyField's rules."""

    def __init__(self, *, min_minor=1, max_minor, **kwargs):
        self.money = MoneyField(min_minor=min_minor, max_minor=max_minor)
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "12.50"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return format_money(value) if isinstance(value, int) else value

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        try:
            return self.money.to_internal_value(value)
        except serializers.ValidationError as exc:
            raise forms.ValidationError(list(exc.detail)) from None


class IdempotentForm(forms.Form):
    """A form that moves money: a fresh key is rendered in a hidden field, so a double submit acts once."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=255)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", new_idempotency_key())

    def clean_idempotency_key(self):
        key = self.cleaned_data["idempotency_key"]
        if not KEY_PATTERN.match(key):
            raise forms.ValidationError("This form has expired; reload the page and try again.")
        return key


class DepositForm(IdempotentForm):
    amount = MoneyFormField(max_minor=MAX_DEPOSIT_MINOR, label="Amount (USD)", help_text="From 0.01 to 1000000.00.")


class BuyForm(IdempotentForm):
    expected_price = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class CleanCharField(forms.CharField):
    """A CharField without control characters (app.core.text.clean_text), taken out before it is validated."""

    def __init__(self, *, multiline=False, **kwargs):
        self.multiline = multiline
        super().__init__(**kwargs)

    def to_python(self, value):
        return super().to_python(clean_text(value, multiline=self.multiline))


class ItemForm(forms.Form):
    title = CleanCharField(max_length=200)
    description = CleanCharField(
        multiline=True, max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    price = MoneyFormField(max_minor=MAX_PRICE_MINOR, label="Price (USD)")
    category = CleanCharField(
        max_length=50, required=False,
        widget=forms.TextInput(attrs={"list": "category-choices"}),
        help_text="Pick one of the suggestions or type your own.",
    )


class RegisterForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        max_length=128, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password_again = forms.CharField(
        max_length=128, strip=False, label="Password (again)",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data["password"] != data["password_again"]:
            self.add_error("password_again", "The two passwords don't match.")
            return data
        checked = RegistrationIn(data={k: data[k] for k in ("username", "email", "password")})
        if not checked.is_valid():
            for field, messages in checked.errors.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, str(message))
        return data


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    """The site's login form."""
