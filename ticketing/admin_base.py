"""A ModelAdmin that reads and writes its model's own service database."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from ticketing.db_routers import database_for_app


class ServiceModelAdmin(admin.ModelAdmin):
    #: The database alias; by default the one the router gives the model's app.
    using: str | None = None

    def db(self) -> str:
        return self.using or database_for_app(self.model._meta.app_label)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).using(self.db())

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        obj.save(using=self.db())

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        obj.delete(using=self.db())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queryset.using(self.db()).delete()

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return super().formfield_for_foreignkey(db_field, request, using=self.db(), **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return super().formfield_for_manytomany(db_field, request, using=self.db(), **kwargs)


class ReadOnlyServiceModelAdmin(ServiceModelAdmin):
    """Rows written only by services (ledger, payments, inbox): support staff look, never edit."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
