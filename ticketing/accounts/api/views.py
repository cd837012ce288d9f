from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenRefreshView

from ticketing.api import SignupThrottle, StrictCharField, client_address, errors, user_id_of

from .. import selectors, services
from ..models import User
from .serializers import LoginSerializer, SignupSerializer, TokenPairSerializer, UserSerializer


class SignupView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [SignupThrottle]

    @extend_schema(request=SignupSerializer, responses={201: UserSerializer})
    def post(self, request: Request) -> Response:
        serializer = SignupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = services.user_register(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError({"password": list(exc.messages)}) from exc
        except services.UsernameTaken as exc:
            raise exceptions.ValidationError({"username": ["This username is taken."]}) from exc
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # Wrong credentials are a 401 (with this header), not the 403 DRF gives without an authenticator.
        return 'Bearer realm="api"'

    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer, **errors(401, 429)})
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = services.user_login(**serializer.validated_data, ip=client_address(request))
        except services.LoginThrottled as exc:
            raise exceptions.Throttled(exc.wait, "Too many failed logins; try again shortly.") from exc
        except services.InvalidCredentials as exc:
            raise exceptions.AuthenticationFailed("Wrong username or password.") from exc
        refresh = RefreshToken.for_user(user)
        refresh["username"] = user.username
        if user.is_superuser or user.has_perm("concerts.door"):
            refresh["door"] = True  # door devices check tickets in with this token (ticketing.door)
        return Response({"access": str(refresh.access_token), "refresh": str(refresh)})


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer})
    def get(self, request: Request) -> Response:
        user = selectors.user_get(user_id=user_id_of(request))
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("The account no longer exists.")
        return Response(UserSerializer(user).data)


class RefreshSerializer(TokenRefreshSerializer):
    """A new access token and a new refresh token; the refresh token sent is blacklisted, so sending it
    again is a 401, and so is the refresh token of an account deactivated or deleted since."""

    refresh = StrictCharField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            return super().validate(attrs)
        except User.DoesNotExist as exc:  # the account was deleted after the token was issued
            raise exceptions.AuthenticationFailed("The account no longer exists.", "no_active_account") from exc


@extend_schema_view(post=extend_schema(responses={200: TokenPairSerializer, **errors(401)}))
class RefreshView(TokenRefreshView):
    serializer_class = RefreshSerializer
