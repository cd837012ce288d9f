"""Idempotent POSTs: a retry with the same ``Idempotency-Key`` gets the first answer again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ticketing.retention import delete_in_batches

from .models import IdempotencyKey

HEADER = "Idempotency-Key"
# The answers a retry must get again. A 503, 403 (not admitted yet), 429 or 401 may change by the next try,
# and a stored one would be replayed for a day without its Retry-After: those are never stored.
FINAL_ERROR_STATUSES = frozenset({400, 404, 409, 422})


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used for a different request (method, path or body)."
    default_code = "idempotency_key_reused"


def idempotent(request: Request, *, user_id: int, scope: str, using: str, handle: Callable[[], Response]) -> Response:
    """Run ``handle`` once per (user, scope, key); store its answer in the same transaction as its effect."""
    key = request.headers.get(HEADER)
    if key is None:
        return handle()
    if not 1 <= len(key) <= 255:
        raise exceptions.ValidationError({HEADER: ["Must be 1 to 255 characters."]})
    request_hash = fingerprint(request)
    with transaction.atomic(using=using):
        record = claim(user_id=user_id, scope=scope, key=key, request_hash=request_hash, using=using)
        if record.status_code:  # answered before: a retry
            if record.request_hash != request_hash:
                raise KeyReused
            replay = Response(record.response, status=record.status_code)
            replay["Idempotent-Replayed"] = "true"
            return replay
        response = run(handle, request)
        if not is_final(response.status_code):
            record.delete(using=using)  # the key stays free for the retry
            return response
        record.status_code = response.status_code
        record.response = response.data
        record.save(using=using, update_fields=["status_code", "response"])
    return response


def is_final(status_code: int) -> bool:
    """Whether a retry must get this answer again (a success, or an error the same request repeats)."""
    return status.is_success(status_code) or status_code in FINAL_ERROR_STATUSES


def fingerprint(request: Request) -> str:
    """What a key is bound to: the method, the path and the body (a cancel's body is empty, its path is not)."""
    bound = {"method": request.method, "path": request.path, "body": request.data}
    return hashlib.sha256(json.dumps(bound, sort_keys=True, default=str).encode()).hexdigest()


def claim(*, user_id: int, scope: str, key: str, request_hash: str, using: str) -> IdempotencyKey:
    """The stored record for this key (locked), or a new one (status 0) when the key is new or expired.

    One ``INSERT ... ON CONFLICT DO NOTHING`` claims a new key, no savepoint. Two requests with one key
    at once: the second's insert waits on the unique index until the first commits, inserts nothing,
    and then reads (and locks) the first one's answer.
    """
    manager = IdempotencyKey.objects.using(using)
    fresh_after = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    for _ in range(2):
        created = key_insert(user_id=user_id, scope=scope, key=key, request_hash=request_hash, using=using)
        if created is not None:
            return created
        record = manager.select_for_update().filter(user_id=user_id, scope=scope, key=key).first()
        if record is not None and record.created_at >= fresh_after:
            return record
        if record is not None:
            record.delete(using=using)  # expired: claim the key afresh
    raise exceptions.APIException("Could not claim the Idempotency-Key; retry.")


def key_insert(*, user_id: int, scope: str, key: str, request_hash: str, using: str) -> IdempotencyKey | None:
    """A new record for the key, or None if the key is taken."""
    connection = connections[using]
    created_at = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {IdempotencyKey._meta.db_table} "  # noqa: S608 (the table name is ours)
            "(user_id, scope, key, request_hash, status_code, response, created_at) "
            "VALUES (%s, %s, %s, %s, 0, NULL, %s) ON CONFLICT (user_id, scope, key) DO NOTHING RETURNING id",
            [user_id, scope, key, request_hash, created_at],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    record = IdempotencyKey(
        id=row[0],
        user_id=user_id,
        scope=scope,
        key=key,
        request_hash=request_hash,
        status_code=0,
        created_at=created_at,
    )
    record._state.adding, record._state.db = False, using
    return record


def run(handle: Callable[[], Response], request: Request) -> Response:
    """The handler's answer, errors included (a 409 is an answer too, and a retry must get it again)."""
    try:
        return handle()
    except (exceptions.APIException, Http404) as exc:  # DRF's handler answers Http404 as its 404
        response = exception_handler(exc, {"request": request})
        assert response is not None
        return response


def expired_keys(*, using: str) -> QuerySet[IdempotencyKey]:
    fresh_after = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    return IdempotencyKey.objects.using(using).filter(created_at__lt=fresh_after)


def expired_keys_delete(*, using: str, batch_size: int | None = None) -> int:
    """Forget expired keys batch after batch until caught up (at most RETENTION_MAX_BATCHES per run)."""
    return delete_in_batches(
        expired_keys(using=using),
        using=using,
        batch_size=batch_size or settings.RETENTION_BATCH_SIZE,
        max_batches=settings.RETENTION_MAX_BATCHES,
    )
