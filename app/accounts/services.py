"""Accounts live on the coordinator: usernames and emails are unique there, ignoring case; so are API tokens."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User as UserModel
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from app.accounts.error_codes import AccountErrorCode
from app.core.error_codes import CommonErrorCode
from app.core.errors import Conflict, ServiceError

from .models import AuthToken

User = get_user_model()


def _taken(username: str, email: str) -> Conflict | None:
    if User.objects.filter(username__iexact=username).exists():
        return Conflict(
            "This username is taken.", code=AccountErrorCode.USERNAME_TAKEN,
            details={"username": ["This username is taken."]},
        )
    if User.objects.filter(email__iexact=email).exists():
        return Conflict(
            "An account with this email exists.", code=AccountErrorCode.EMAIL_TAKEN,
            details={"email": ["This email is already registered."]},
        )
    return None


def register_user(*, username: str, email: str, password: str) -> UserModel:
    conflict = _taken(username, email)
    if conflict:
        raise conflict
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        # Someone registered the same name or email at the same moment (case-insensitive unique indexes).
        taken = _taken(username, email)
        raise taken or Conflict("This username or email is taken.", code=AccountErrorCode.USERNAME_TAKEN) from None


def change_password(user: UserModel, *, old_password: str, new_password: str) -> None:
    """Check the old password, apply Django's password rules to the new one, and set it.

    Saving it revokes every API token of the user (app.accounts.passwords) and ends every session logged in with
    the old password; a caller that wants to keep its own session calls update_session_auth_hash.
    """
    if not user.check_password(old_password):
        raise ServiceError("The old password is wrong.", code=AccountErrorCode.WRONG_PASSWORD,
                           details={"old_password": ["The old password is wrong."]})
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise ServiceError("The request has invalid fields.", code=CommonErrorCode.VALIDATION_ERROR,
                           details={"new_password": list(exc.messages)}) from None
    user.set_password(new_password)
    user.save(update_fields=["password"])


def issue_token(user: UserModel, client: str = "") -> tuple[str, AuthToken]:
    """A new token for one device or client: (token, its AuthToken row). The token itself is never stored.

    It lives REST_KNOX["TOKEN_TTL"]; a user keeps at most API_TOKENS_PER_USER, the least recently used go first.
    """
    instance, token = AuthToken.objects.create(user=user, client=(client or "")[:200])
    _keep_newest_tokens(user, settings.API_TOKENS_PER_USER)
    return token, instance


def _keep_newest_tokens(user: UserModel, limit: int) -> None:
    tokens = AuthToken.objects.filter(user=user)
    keep = tokens.order_by(Coalesce("last_used", "created").desc(), F("created").desc()).values_list(
        "digest", flat=True
    )
    tokens.exclude(digest__in=list(keep[:limit])).delete()


def revoke_token(auth_token: AuthToken) -> None:
    AuthToken.objects.filter(pk=auth_token.pk).delete()


def revoke_tokens(user: UserModel) -> None:
    """Every API token of the user: every device and client is logged out."""
    AuthToken.objects.filter(user=user).delete()


def tokens_of(user: UserModel) -> QuerySet[AuthToken]:
    """The user's API tokens that still work, most recently used first."""
    now = timezone.now()
    return (AuthToken.objects.filter(user=user).exclude(expiry__lte=now)
            .order_by(Coalesce("last_used", "created").desc(), F("created").desc()))


def purge_expired_tokens() -> None:
    """Delete expired tokens (a maintenance task; an expired token is refused anyway)."""
    AuthToken.objects.filter(expiry__lte=timezone.now()).delete()
