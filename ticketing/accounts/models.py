from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower


class User(AbstractUser):
    class Meta:
        constraints = [models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new password (the admin's form, `manage.py changepassword`, any set_password) ends every
        # refresh token given out before it, whichever way it was changed.
        password_changed = getattr(self, "_password", None) is not None and self.pk is not None
        super().save(*args, **kwargs)
        if password_changed:
            from .services import user_tokens_revoke  # services import this module

            user_tokens_revoke(user_id=self.pk)
