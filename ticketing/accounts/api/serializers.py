from __future__ import annotations

from django.contrib.auth.password_validation import MinimumLengthValidator, get_default_password_validators
from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from ticketing.api import StrictCharField

PASSWORD_MAX_LENGTH = 128


def password_min_length() -> int:
    """The shortest password the configured validators let through (they enforce it; the schema says it)."""
    lengths = [v.min_length for v in get_default_password_validators() if isinstance(v, MinimumLengthValidator)]
    return max(lengths, default=1)


def password_pattern() -> str:
    """The validators' length rule as a pattern (the rest, such as "not only digits", is in the help
    text: a lookahead in the pattern makes schema-driven generators crawl)."""
    return rf"^[^\x00]{{{password_min_length()},{PASSWORD_MAX_LENGTH}}}$"


class SignupSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = StrictCharField(
        max_length=PASSWORD_MAX_LENGTH,
        write_only=True,
        trim_whitespace=False,
        schema_min_length=password_min_length(),
        schema_pattern=password_pattern(),
        help_text="Not too common, not only digits, not like the username.",
    )


class LoginSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, write_only=True, trim_whitespace=False)


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)
