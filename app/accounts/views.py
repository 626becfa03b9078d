from django.contrib.auth import authenticate
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from app.core.errors import ServiceError

from . import selectors, services
from .serializers import CredentialsIn, OverviewOut, RegistrationIn, UserOut
from .throttles import LoginRateThrottle


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def post(self, request):
        params = RegistrationIn(data=request.data)
        params.is_valid(raise_exception=True)
        user = services.register_user(**params.validated_data)
        return Response(UserOut(user).data, status=201)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [LoginRateThrottle]

    def post(self, request):
        params = CredentialsIn(data=request.data)
        params.is_valid(raise_exception=True)
        user = authenticate(request, **params.validated_data)
        if user is None:
            # A ServiceError, not DRF's AuthenticationFailed: this view has no authenticator, and DRF would make that a 403.
            raise ServiceError("Wrong username or password.", code="authentication_failed", status=401)
        return Response({"token": services.issue_token(user)})


class LogoutView(APIView):
    def post(self, request):
        services.revoke_tokens(request.user)
        return Response(status=204)


class OverviewView(APIView):
    def get(self, request):
        return Response(OverviewOut(selectors.account_overview(request.user.id)).data)
