from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "ticketing.shop"
    label = "shop"
    verbose_name = "Shop (web pages for concertgoers)"
