from django.contrib.auth import authenticate, logout, update_session_auth_hash
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from app.accounts.error_codes import AccountErrorCode
from app.core.error_codes import CommonErrorCode
from app.core.errors import ServiceError
from app.core.openapi import BAD_BODY, NEEDS_LOGIN, errors

from . import selectors, services
from .models import AuthToken
from .serializers import CredentialsIn, OverviewOut, PasswordChangeIn, RegistrationIn, TokenOut, UserOut
from .throttles import LOGIN_THROTTLES


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_scope = "register"

    @extend_schema(
        summary="Create an account",
        request=RegistrationIn,
        responses={
            201: UserOut, **errors(BAD_BODY, (409, AccountErrorCode.USERNAME_TAKEN, AccountErrorCode.EMAIL_TAKEN)),
        },
        description=(
            "The password must also pass rules that OpenAPI cannot express (a 400 `validation_error` on "
            "`password` otherwise): at least 8 characters, not a common password, not all digits, and not "
            "too like the username or the email."
        ),
    )
    def post(self, request):
        params = RegistrationIn(data=request.data)
        params.is_valid(raise_exception=True)
        user = services.register_user(**params.validated_data)
        return Response(UserOut(user).data, status=201)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = LOGIN_THROTTLES

    @extend_schema(
        summary="Log in: a token for the Authorization header",
        request=CredentialsIn,
        responses={
            200: TokenOut,
            **errors(BAD_BODY, (401, CommonErrorCode.AUTHENTICATION_FAILED), (429, CommonErrorCode.THROTTLED)),
        },
        description=(
            "At most 10 attempts a minute per username (however it is spelt: spaces around it, case and Unicode "
            "compatibility forms count as one) and 20 a minute per client address, whatever the usernames."
        ),
    )
    def post(self, request):
        params = CredentialsIn(data=request.data)
        params.is_valid(raise_exception=True)
        user = authenticate(request, **params.validated_data)
        if user is None:
            # A ServiceError, not DRF's AuthenticationFailed: this view has no authenticator, and DRF would make
            # that a 403.
            raise ServiceError("Wrong username or password.", code=CommonErrorCode.AUTHENTICATION_FAILED, status=401)
        token, instance = services.issue_token(user, client=request.headers.get("User-Agent", ""))
        return Response(TokenOut({"token": token, "expiry": instance.expiry}).data)


class LogoutView(APIView):
    @extend_schema(
        summary="Log out: revoke the token of this request",
        description="Other devices' tokens keep working (see `auth/logout-all`). Called with a browser session "
                    "instead of a token, it ends that session.",
        request=None, responses={204: None, **errors(NEEDS_LOGIN)},
    )
    def post(self, request):
        if isinstance(request.auth, AuthToken):
            services.revoke_token(request.auth)
        else:
            logout(request._request)
        return Response(status=204)


class LogoutAllView(APIView):
    @extend_schema(
        summary="Log out everywhere: revoke every API token of mine",
        description="Every device and client that logged in with the API must log in again.",
        request=None, responses={204: None, **errors(NEEDS_LOGIN)},
    )
    def post(self, request):
        services.revoke_tokens(request.user)
        return Response(status=204)


class PasswordView(APIView):
    throttle_scope = "password_change"

    @extend_schema(
        summary="Change my password: every token of mine is revoked",
        description=(
            "Every API token of mine stops working, this one too (log in again with the new password), and every "
            "browser session logged in with the old password ends; a browser session calling this keeps going. "
            "At most 10 attempts an hour.\n\n"
            "Rules OpenAPI cannot express (a 400 otherwise): `old_password` must be my current password "
            "(`wrong_password`), and `new_password` must pass the password rules of registration (`validation_error`)."
        ),
        request=PasswordChangeIn,
        responses={204: None, **errors((*BAD_BODY, AccountErrorCode.WRONG_PASSWORD), NEEDS_LOGIN,
                                       (429, CommonErrorCode.THROTTLED))},
    )
    def post(self, request):
        params = PasswordChangeIn(data=request.data)
        params.is_valid(raise_exception=True)
        services.change_password(request.user, **params.validated_data)
        if request.auth is None:  # a browser session: keep it
            update_session_auth_hash(request._request, request.user)
        return Response(status=204)


class OverviewView(APIView):
    @extend_schema(
        summary="My balance and the latest of my inventory, listings, purchases and sales",
        responses={200: OverviewOut, **errors(NEEDS_LOGIN)},
    )
    def get(self, request):
        return Response(OverviewOut(selectors.account_overview(request.user.id)).data)
