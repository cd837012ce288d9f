from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ticketing.api import IDEMPOTENCY_KEY, UserRateThrottle, client_address, errors, user_id_of
from ticketing.idempotency.services import idempotent

from .. import admission, selectors, services, waiting_room, waitlist
from .serializers import (
    ConcertSerializer,
    QueueStatusSerializer,
    ReservationCreateSerializer,
    ReservationSerializer,
    SeatSerializer,
    TicketSerializer,
    WaitlistJoinSerializer,
    WaitlistOfferSerializer,
    WaitlistPlaceSerializer,
)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class WaitingRoomDown(exceptions.APIException):
    """503 with Retry-After (DRF's handler turns ``wait`` into the header)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "waiting_room_unavailable"
    default_detail = waiting_room.UNAVAILABLE

    def __init__(self) -> None:
        super().__init__()
        self.wait = waiting_room.WaitingRoomUnavailable.retry_after_seconds


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
        responses={202: ReservationSerializer, **errors(403, 404, 409, 503)},
        parameters=[IDEMPOTENCY_KEY],
    )
    def post(self, request: Request) -> Response:
        user_id = user_id_of(request)

        def book() -> Response:
            serializer = ReservationCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            seat_ids = serializer.validated_data["seat_ids"]
            try:
                reservation = services.reservation_create(user_id=user_id, seat_ids=seat_ids)
            except services.SeatNotFound as exc:
                raise exceptions.NotFound(f"No seat with id {exc.args[0]}.") from exc
            except services.SeatNotAvailable as exc:
                # The seats by id too, so that a client can drop them from its choice.
                raise Conflict({"detail": str(exc), "seat_ids": [str(i) for i in sorted(exc.taken)]}) from exc
            except services.SeatLimitReached as exc:
                raise Conflict({"detail": str(exc), "limit": str(settings.MAX_SEATS_PER_USER)}) from exc
            except services.BookingRefused as exc:
                raise Conflict(str(exc)) from exc
            except admission.NotAdmitted as exc:
                raise exceptions.PermissionDenied(str(exc)) from exc
            except waiting_room.WaitingRoomUnavailable as exc:
                raise WaitingRoomDown from exc
            return Response(ReservationSerializer(reservation).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, user_id=user_id, scope="reservation-create", using=services.DB, handle=book)


class ReservationDetailView(APIView):
    @extend_schema(responses={200: ReservationSerializer})
    def get(self, request: Request, reservation_id: int) -> Response:
        reservation = selectors.reservation_get(user_id=user_id_of(request), reservation_id=reservation_id)
        if reservation is None:
            raise Http404
        return Response(ReservationSerializer(reservation).data)


class ReservationTicketsView(APIView):
    @extend_schema(responses={200: TicketSerializer(many=True)})
    def get(self, request: Request, reservation_id: int) -> Response:
        tickets = selectors.reservation_tickets(user_id=user_id_of(request), reservation_id=reservation_id)
        if tickets is None:
            raise Http404
        return Response(TicketSerializer(tickets, many=True).data)


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


class PerformanceQueueView(APIView):
    """The waiting room of a queued performance: join it (POST) and poll one's place (GET).

    The web front answers these on its fast path (``ticketing.front.queue``) when the caller shows a
    queue ticket or a JWT; this view answers the rest (a shop page's session, CSRF-checked), with the
    same fields, and hands out the ticket that lets the next polls skip Django.
    """

    throttle_classes: list[Any] = []  # joins are throttled by the waiting room itself (per user and address)

    @extend_schema(request=None, responses={200: QueueStatusSerializer, **errors(404, 409, 429, 503)})
    def post(self, request: Request, performance_id: int) -> Response:
        performance = selectors.performance_get(performance_id=performance_id)
        if performance is None:
            raise Http404
        if not performance.queue:
            raise Conflict(waiting_room.NO_WAITING_ROOM)
        user_id = user_id_of(request)
        try:
            place = waiting_room.queue_join(
                performance_id=performance.id,
                user_id=user_id,
                opens_at=performance.sales_open_at,
                address=client_address(request),
            )
        except waiting_room.JoinThrottled as exc:
            raise exceptions.Throttled(wait=exc.retry_after_seconds, detail=str(exc)) from exc
        except waiting_room.WaitingRoomUnavailable as exc:
            raise WaitingRoomDown from exc
        return queue_response(request, performance_id, user_id, place)

    @extend_schema(responses={200: QueueStatusSerializer, **errors(404, 503)})
    def get(self, request: Request, performance_id: int) -> Response:
        # No database query beyond the session's: one Redis round trip.
        user_id = user_id_of(request)
        try:
            place = waiting_room.queue_status(performance_id=performance_id, user_id=user_id)
        except waiting_room.WaitingRoomUnavailable as exc:
            raise WaitingRoomDown from exc
        if place is None:
            raise exceptions.NotFound(waiting_room.NOT_IN_ROOM)
        return queue_response(request, performance_id, user_id, place)


def queue_response(request: Request, performance_id: int, user_id: int, place: waiting_room.QueueStatus) -> Response:
    """The place and a fresh queue ticket (bound to the session it was issued to, if any)."""
    by_session = isinstance(request.successful_authenticator, SessionAuthentication)
    session = waiting_room.session_digest(request.COOKIES.get(settings.SESSION_COOKIE_NAME)) if by_session else ""
    ticket = waiting_room.queue_ticket_issue(
        performance_id=performance_id, user_id=user_id, status=place, session=session
    )
    response = Response(waiting_room.queue_answer(place, ticket), headers={"Cache-Control": "no-store"})
    response.set_cookie(
        waiting_room.TICKET_COOKIE,
        ticket,
        path=waiting_room.ticket_cookie_path(performance_id),
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response


class PerformanceWaitlistView(APIView):
    @extend_schema(
        request=WaitlistJoinSerializer,
        responses={201: WaitlistPlaceSerializer, 200: WaitlistPlaceSerializer, **errors(409)},
    )
    def post(self, request: Request, performance_id: int) -> Response:
        serializer = WaitlistJoinSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            place = waitlist.waitlist_join(
                user_id=user_id_of(request), performance_id=performance_id, **serializer.validated_data
            )
        except waitlist.PerformanceNotFound as exc:
            raise Http404 from exc
        except services.SeatLimitReached as exc:
            raise Conflict({"detail": str(exc), "limit": str(settings.MAX_SEATS_PER_USER)}) from exc
        except services.BookingRefused as exc:
            raise Conflict(str(exc)) from exc
        code = status.HTTP_201_CREATED if place.created else status.HTTP_200_OK
        return Response(WaitlistPlaceSerializer(place).data, status=code)


class WaitlistOfferListView(APIView):
    @extend_schema(responses={200: WaitlistOfferSerializer(many=True)})
    def get(self, request: Request) -> Response:
        offers = selectors.waitlist_offers(user_id=user_id_of(request))[:100]
        return Response(WaitlistOfferSerializer(offers, many=True).data)


class WaitlistOfferAcceptView(APIView):
    @extend_schema(request=None, responses={202: ReservationSerializer, **errors(409)}, parameters=[IDEMPOTENCY_KEY])
    def post(self, request: Request, offer_id: int) -> Response:
        user_id = user_id_of(request)

        def accept() -> Response:
            try:
                reservation = waitlist.waitlist_offer_accept(user_id=user_id, offer_id=offer_id)
            except waitlist.OfferNotFound as exc:
                raise Http404 from exc
            except services.SeatLimitReached as exc:
                raise Conflict({"detail": str(exc), "limit": str(settings.MAX_SEATS_PER_USER)}) from exc
            except services.BookingRefused as exc:  # lapsed
                raise Conflict(str(exc)) from exc
            return Response(ReservationSerializer(reservation).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, user_id=user_id, scope="waitlist-accept", using=services.DB, handle=accept)
