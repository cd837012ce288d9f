from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.concert_list, name="concerts"),
    path("performances/<id:performance_id>/", views.performance_detail, name="performance"),
    path("performances/<id:performance_id>/seats.json", views.performance_seat_statuses, name="seat-statuses"),
    path("bookings/", views.booking_list, name="bookings"),
    path("bookings/<id:reservation_id>/", views.booking_detail, name="booking"),
    path("bookings/<id:reservation_id>/tickets/", views.booking_tickets, name="tickets"),
    path("bookings/<id:reservation_id>/status.json", views.booking_status, name="booking-status"),
    path("wallet/", views.wallet, name="wallet"),
    path("signup/", views.signup, name="signup"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]
