"""Make sure the demo superuser ``admin`` exists, with DEMO_ADMIN_PASSWORD or a fresh random password."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand

from ticketing.accounts.demo import demo_admin_ensure


class Command(BaseCommand):
    help = "Create or reset the demo superuser 'admin' (password from DEMO_ADMIN_PASSWORD, else random, printed)."

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        demo_admin_ensure(password=password)
        shown = "(from DEMO_ADMIN_PASSWORD)" if os.environ.get("DEMO_ADMIN_PASSWORD") else password
        self.stdout.write(f"admin at /admin/: username 'admin', password {shown}")
