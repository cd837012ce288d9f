from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ticketing.api import IDEMPOTENCY_KEY, user_id_of
from ticketing.idempotency.services import idempotent

from .. import selectors, services
from .serializers import ChargeSerializer, PaymentSerializer, WalletSerializer


class WalletView(APIView):
    @extend_schema(responses={200: WalletSerializer})
    def get(self, request: Request) -> Response:
        return Response({"balance": selectors.wallet_balance(user_id=user_id_of(request))})


class WalletChargeView(APIView):
    @extend_schema(
        request=ChargeSerializer,
        responses={200: WalletSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        user_id = user_id_of(request)

        def charge() -> Response:
            serializer = ChargeSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            wallet = services.wallet_top_up(user_id=user_id, amount=serializer.validated_data["amount"])
            return Response({"balance": wallet.balance})

        return idempotent(request, user_id=user_id, scope="wallet-charge", using=services.DB, handle=charge)


class PaymentListView(APIView):
    @extend_schema(responses={200: PaymentSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(PaymentSerializer(selectors.payment_list(user_id=user_id_of(request)), many=True).data)
