"""The door's JSON API: check a scanned ticket in; the public key that verifies ticket codes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ticketing.accounts import selectors as accounts
from ticketing.api import ERRORS, StrictCharField, errors, user_id_of
from ticketing.concerts import ticket_codes, tickets
from ticketing.concerts.ticket_codes import BadTicketCode

from .permissions import DoorPermission


class CheckInSerializer(serializers.Serializer):
    code = StrictCharField(max_length=ticket_codes.MAX_CODE_LENGTH, help_text="What the ticket's QR code encodes.")


class CheckedInSerializer(serializers.Serializer):
    ticket_id = serializers.IntegerField()
    label = serializers.CharField(help_text="The seat.")  # type: ignore[assignment]  # a field, not Field.label
    holder = serializers.CharField(help_text="The username of the ticket's owner.")
    checked_in_at = serializers.DateTimeField()


AlreadyCheckedIn = inline_serializer(
    "AlreadyCheckedIn", {"detail": serializers.CharField(), "checked_in_at": serializers.DateTimeField()}
)


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_code = "void"


class CheckInView(APIView):
    permission_classes = [DoorPermission]

    @extend_schema(
        request=CheckInSerializer,
        responses={200: CheckedInSerializer, 403: ERRORS[403], 409: AlreadyCheckedIn, **errors(410)},
    )
    def post(self, request: Request) -> Response:
        serializer = CheckInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = tickets.ticket_check_in(code=serializer.validated_data["code"], staff_user_id=user_id_of(request))
        except BadTicketCode as exc:
            raise exceptions.ValidationError({"code": [str(exc)]}) from exc
        ticket = result.ticket
        if result.outcome == tickets.CheckInOutcome.VOID:
            raise Gone("This ticket is void: its booking was cancelled.")
        if result.outcome == tickets.CheckInOutcome.ALREADY_CHECKED_IN:
            assert ticket.checked_in_at is not None  # a CHECKED_IN ticket has its time (a database constraint)
            first_time = serializers.DateTimeField().to_representation(ticket.checked_in_at)
            body: dict[str, Any] = {"detail": f"Already checked in at {first_time}.", "checked_in_at": first_time}
            return Response(body, status=status.HTTP_409_CONFLICT)
        holder = accounts.user_get(user_id=ticket.user_id)
        answer = {
            "ticket_id": ticket.id,
            "label": ticket.seat.label,
            "holder": holder.username if holder else f"user {ticket.user_id}",
            "checked_in_at": ticket.checked_in_at,
        }
        return Response(CheckedInSerializer(answer).data)


class PublicKeySerializer(serializers.Serializer):
    algorithm = serializers.CharField(help_text="Ed25519.")
    key_id = serializers.CharField(help_text="The key's id, as the `k` claim of each code names it.")
    public_key = serializers.CharField(help_text="The raw 32-byte public key, base64url.")
    pem = serializers.CharField(help_text="The same key as a PEM SubjectPublicKeyInfo.")


class PublicKeyView(APIView):
    """What a door device needs to verify ticket codes by itself (no secret: it cannot sign)."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: PublicKeySerializer})
    def get(self, request: Request) -> Response:
        return Response(
            {
                "algorithm": ticket_codes.ALGORITHM,
                "key_id": ticket_codes.key_id(),
                "public_key": ticket_codes.b64encode(ticket_codes.public_key_bytes()),
                "pem": ticket_codes.public_key_pem(),
            }
        )
