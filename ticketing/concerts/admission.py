"""The booking's side of the waiting room: admission before a booking, and telling it how sagas end.

Redis is another server: nothing here runs inside a transaction. The reads fail closed (a queued
performance is not booked while its waiting room is unreachable); the notes after a commit are best
effort (an admission that is not told simply runs out on its timer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from django.db import transaction

from . import waiting_room
from .models import Reservation

logger = logging.getLogger(__name__)

DB = "concerts"


class NotAdmitted(Exception):
    """A queued performance: the user has no admission from its waiting room."""


def admission_check(*, performance_id: int, user_id: int) -> None:
    """Raises NotAdmitted, or WaitingRoomUnavailable when Redis is down (fail closed)."""
    if not waiting_room.queue_admitted(performance_id=performance_id, user_id=user_id):
        raise NotAdmitted("This performance has a waiting room: join its queue and book once admitted.")


def admission_booking_started_on_commit(*, performance_id: int, user_id: int) -> None:
    transaction.on_commit(
        lambda: waiting_room_tell(waiting_room.queue_booking_started, performance_id, user_id), using=DB
    )


def admission_end_on_commit(reservation: Reservation, *, confirmed: bool) -> None:
    performance = reservation.seat.performance
    if performance.queue:
        finished = partial(waiting_room.queue_saga_finished, confirmed=confirmed)
        transaction.on_commit(lambda: waiting_room_tell(finished, performance.id, reservation.user_id), using=DB)


def waiting_room_tell(action: Callable[..., None], performance_id: int, user_id: int) -> None:
    """After the commit, best effort: if Redis is down the admission simply runs out on its timer."""
    try:
        action(performance_id=performance_id, user_id=user_id)
    except waiting_room.WaitingRoomUnavailable:
        logger.warning("waiting room unreachable: admission of user %s ends on its timer", user_id)
