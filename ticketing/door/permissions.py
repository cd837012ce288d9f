"""Who may check tickets in: users with the ``door`` permission (superusers have every permission)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

DOOR_PERMISSION = "concerts.door"


def may_use_the_door(user: Any, token: Any = None) -> bool:
    """A session's user by its permissions; a JWT's by the ``door`` claim accounts puts in at login."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False) or user.has_perm(DOOR_PERMISSION):
        return True
    return bool(token is not None and hasattr(token, "get") and token.get("door"))


class DoorPermission(BasePermission):
    message = "Checking tickets in needs the door permission."

    def has_permission(self, request: Request, view: Any) -> bool:
        return may_use_the_door(request.user, request.auth)
