"""Demo data: the superuser `make run` shows the admin with."""

from __future__ import annotations

from django.db import transaction

from .models import User
from .selectors import DB


def demo_admin_ensure(*, password: str) -> User:
    """Create or reset ``admin`` as an active superuser with ``password``."""
    with transaction.atomic(using=DB):
        user = User.objects.using(DB).filter(username__iexact="admin").first() or User(username="admin")
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save(using=DB)
    return user
