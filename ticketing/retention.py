"""Deleting old rows a bounded batch at a time, until caught up: shared by every table that expires."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet


def delete_in_batches(queryset: QuerySet[Any], *, using: str, batch_size: int, max_batches: int) -> int:
    """Delete the rows of ``queryset``, batch after batch, until none is left or ``max_batches`` ran.

    One batch per run would cap a table's deletions at ``batch_size`` rows per run, below the rate at
    which it can grow; the bound on batches keeps one run's work bounded all the same. The query has no
    ordering, so the database walks the index that its filter names.
    """
    model = queryset.model
    deleted = 0
    for _ in range(max_batches):
        pks = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if pks:
            with transaction.atomic(using=using):
                deleted += model._default_manager.using(using).filter(pk__in=pks).delete()[0]
        if len(pks) < batch_size:
            break
    return deleted
