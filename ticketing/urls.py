from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from ticketing.api import IdConverter, not_found
from ticketing.door import urls as door
from ticketing.observability import views as observability

register_converter(IdConverter, "id")

handler404 = "ticketing.shop.views.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", observability.metrics, name="metrics"),
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("api/auth/", include("ticketing.accounts.api.urls")),
    path("api/", include("ticketing.concerts.api.urls")),
    path("api/", include("ticketing.payments.api.urls")),
    path("api/door/", include((door.api_urlpatterns, "door-api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    re_path(r"^api/", not_found),  # what no API pattern above matched: a JSON 404, not the shop's page
    path("i18n/", include("django.conf.urls.i18n")),
    path("door/", include("ticketing.door.urls")),
    path("", include("ticketing.shop.urls")),
]
