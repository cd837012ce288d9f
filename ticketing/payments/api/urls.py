from django.urls import path

from . import views

urlpatterns = [
    path("wallet/", views.WalletView.as_view(), name="wallet"),
    path("wallet/charge/", views.WalletChargeView.as_view(), name="wallet-charge"),
    path("payments/", views.PaymentListView.as_view(), name="payment-list"),
]
