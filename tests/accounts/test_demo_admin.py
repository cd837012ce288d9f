"""`make run`'s demo superuser: created, or reset, by `manage.py ensure_demo_admin`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import all_databases
from ticketing.accounts.models import User

pytestmark = [all_databases]


def test_the_demo_admin_is_created_then_reset_with_the_password_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # given no admin, then an admin whose password was changed and who was deactivated
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "first-Password-1")
    call_command("ensure_demo_admin", stdout=StringIO())
    User.objects.using("default").filter(username="admin").update(is_active=False)

    # when the command runs again with another password
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "second-Password-2")
    out = StringIO()
    call_command("ensure_demo_admin", stdout=out)

    # then there is one active superuser admin, with the new password, and the password is not printed
    admin = User.objects.using("default").get(username="admin")
    assert (admin.is_active, admin.is_staff, admin.is_superuser) == (True, True, True)
    assert admin.check_password("second-Password-2")
    assert "second-Password-2" not in out.getvalue()
