from __future__ import annotations

from django.db import models
from django.utils import timezone


class IdempotencyKey(models.Model):
    """The first answer to a request that carried an ``Idempotency-Key`` header, per user and key.

    The table exists in every service database; a record lives beside the rows its request changed,
    and is written in the same transaction.
    """

    user_id = models.BigIntegerField()
    scope = models.CharField(max_length=64, help_text="Which operation, e.g. 'reservation-create'.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "scope", "key"], name="idempotency_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} (user {self.user_id})"
