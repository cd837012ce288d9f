from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "ticketing.audit"
    label = "audit"
    verbose_name = "Saga audit (reads every service database; an operator's tool, not a service)"
