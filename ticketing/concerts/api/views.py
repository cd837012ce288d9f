from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ticketing.api import IDEMPOTENCY_KEY, UserRateThrottle, errors, user_id_of
from ticketing.idempotency.services import idempotent

from .. import selectors, services
from .serializers import ConcertSerializer, ReservationCreateSerializer, ReservationSerializer, SeatSerializer


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class ConcertListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: ConcertSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(ConcertSerializer(selectors.concert_list(), many=True).data)


class ConcertDetailView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: ConcertSerializer})
    def get(self, request: Request, concert_id: int) -> Response:
        concert = selectors.concert_get(concert_id=concert_id)
        if concert is None:
            raise Http404
        return Response(ConcertSerializer(concert).data)


class PerformanceSeatsView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: SeatSerializer(many=True)})
    def get(self, request: Request, performance_id: int) -> Response:
        seats = selectors.performance_seats(performance_id=performance_id)
        if seats is None:
            raise Http404
        return Response(SeatSerializer(seats, many=True).data)


class BookingThrottle(UserRateThrottle):
    scope = "booking"
    rate_setting = "BOOKING_RATE_PER_USER"


class ReservationListView(APIView):
    throttle_classes = [BookingThrottle]  # counts the bookings (POST) only

    @extend_schema(responses={200: ReservationSerializer(many=True)})
    def get(self, request: Request) -> Response:
        reservations = selectors.reservation_list(user_id=user_id_of(request))
        return Response(ReservationSerializer(reservations, many=True).data)

    @extend_schema(
        request=ReservationCreateSerializer,
        responses={202: ReservationSerializer, **errors(404, 409)},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        user_id = user_id_of(request)

        def book() -> Response:
            serializer = ReservationCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            seat_id = serializer.validated_data["seat_id"]
            try:
                reservation = services.reservation_create(user_id=user_id, seat_id=seat_id)
            except services.SeatNotFound as exc:
                raise exceptions.NotFound(f"No seat with id {seat_id}.") from exc
            except services.SeatNotAvailable as exc:
                raise Conflict(str(exc)) from exc
            return Response(ReservationSerializer(reservation).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, user_id=user_id, scope="reservation-create", using=services.DB, handle=book)


class ReservationDetailView(APIView):
    @extend_schema(responses={200: ReservationSerializer})
    def get(self, request: Request, reservation_id: int) -> Response:
        reservation = selectors.reservation_get(user_id=user_id_of(request), reservation_id=reservation_id)
        if reservation is None:
            raise Http404
        return Response(ReservationSerializer(reservation).data)


class ReservationCancelView(APIView):
    @extend_schema(request=None, responses={200: ReservationSerializer, **errors(409)}, parameters=[IDEMPOTENCY_KEY])
    def post(self, request: Request, reservation_id: int) -> Response:
        user_id = user_id_of(request)

        def cancel() -> Response:
            try:
                reservation = services.reservation_cancel(user_id=user_id, reservation_id=reservation_id)
            except services.ReservationNotFound as exc:
                raise Http404 from exc
            except services.CannotCancel as exc:
                raise Conflict(str(exc)) from exc
            return Response(ReservationSerializer(reservation).data)

        return idempotent(request, user_id=user_id, scope="reservation-cancel", using=services.DB, handle=cancel)
