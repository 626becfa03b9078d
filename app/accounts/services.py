"""Accounts live on the coordinator: usernames and emails are unique there, ignoring case."""
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from app.core.errors import Conflict

User = get_user_model()


def _taken(username, email):
    if User.objects.filter(username__iexact=username).exists():
        return Conflict("This username is taken.", code="username_taken", details={"username": ["This username is taken."]})
    if User.objects.filter(email__iexact=email).exists():
        return Conflict("An account with this email exists.", code="email_taken", details={"email": ["This email is already registered."]})
    return None


def register_user(*, username, email, password):
    conflict = _taken(username, email)
    if conflict:
        raise conflict
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        # Someone registered the same name or email at the same moment (case-insensitive unique indexes).
        raise _taken(username, email) or Conflict("This username or email is taken.", code="username_taken") from None


def issue_token(user):
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def revoke_tokens(user):
    Token.objects.filter(user=user).delete()
