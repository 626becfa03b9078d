import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from app.catalog.serializers import ItemOut
from app.core.fields import IdField
from app.core.money import CURRENCY, MoneyField
from app.orders.serializers import PurchaseOut, SaleOut


class RegistrationIn(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

    def validate(self, data):
        candidate = get_user_model()(username=data["username"], email=data["email"])
        try:
            validate_password(data["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return data


class PasswordChangeIn(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    new_password = serializers.CharField(
        max_length=128, write_only=True, trim_whitespace=False,
        help_text="Django's password rules apply (length, not common, not all digits, not like the username).",
    )


class UserOut(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()
    email = serializers.EmailField()


class CredentialsIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`. Shown only here.")
    expiry = serializers.DateTimeField(help_text="When it stops working (30 days after the login by default).")


@functools.cache  # one class per row serializer: the OpenAPI description names it (ItemOutSection, ...)
def _section_class(item_serializer):
    return type(f"{item_serializer.__name__}Section", (serializers.Serializer,), {
        "count": serializers.IntegerField(),
        "latest": item_serializer(many=True, help_text="The latest five, newest first."),
    })


def _section(item_serializer):
    return _section_class(item_serializer)()


class OverviewOut(serializers.Serializer):
    balance = MoneyField()
    currency = serializers.CharField(default=CURRENCY)
    inventory = _section(ItemOut)
    listed = _section(ItemOut)
    purchased = _section(PurchaseOut)
    sold = _section(SaleOut)
    total_spent = MoneyField()
    total_earned = MoneyField()
