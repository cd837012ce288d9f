from django.apps import AppConfig


class IdempotencyConfig(AppConfig):
    name = "ticketing.idempotency"
    label = "idempotency"
    verbose_name = "Idempotency keys"
