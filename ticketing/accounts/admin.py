from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ticketing.api import client_address

from . import services
from .models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["id", "username", "email", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["username", "email", "=id"]


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login through ``user_login``: the same delay per account and per address as the API's
    and the shop's logins, on the same counters (the name ``admin`` is known, and each guess costs an
    Argon2 hash)."""

    def clean(self) -> dict[str, Any]:
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is None or password is None:
            return self.cleaned_data  # the field errors say what is missing
        ip = client_address(self.request) if self.request is not None else ""  # the admin always gives one
        try:
            self.user_cache = services.user_login(username=username, password=password, ip=ip)
        except services.LoginThrottled as exc:
            raise ValidationError(
                _("Too many failed attempts. Please try again in %(seconds)s s."),
                code="throttled",
                params={"seconds": exc.wait},
            ) from exc
        except services.InvalidCredentials as exc:
            raise self.get_invalid_login_error() from exc
        self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


admin.site.login_form = AdminLoginForm
