from django.urls import path

from . import views

urlpatterns = [
    path("concerts/", views.ConcertListView.as_view(), name="concert-list"),
    path("concerts/<id:concert_id>/", views.ConcertDetailView.as_view(), name="concert-detail"),
    path("performances/<id:performance_id>/seats/", views.PerformanceSeatsView.as_view(), name="performance-seats"),
    path("performances/<id:performance_id>/queue/", views.PerformanceQueueView.as_view(), name="performance-queue"),
    path("performances/<id:performance_id>/waitlist/", views.PerformanceWaitlistView.as_view(), name="waitlist-join"),
    path("waitlist/offers/", views.WaitlistOfferListView.as_view(), name="waitlist-offers"),
    path("waitlist/offers/<id:offer_id>/accept/", views.WaitlistOfferAcceptView.as_view(), name="waitlist-accept"),
    path("reservations/", views.ReservationListView.as_view(), name="reservation-list"),
    path("reservations/<id:reservation_id>/", views.ReservationDetailView.as_view(), name="reservation-detail"),
    path("reservations/<id:reservation_id>/tickets/", views.ReservationTicketsView.as_view(), name="tickets"),
    path("reservations/<id:reservation_id>/cancel/", views.ReservationCancelView.as_view(), name="reservation-cancel"),
]
