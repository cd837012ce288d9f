from django.urls import path

from . import api, views

app_name = "door"

api_urlpatterns = [
    path("check-in/", api.CheckInView.as_view(), name="check-in"),
    path("public-key/", api.PublicKeyView.as_view(), name="public-key"),
]

urlpatterns = [path("", views.door, name="door")]
