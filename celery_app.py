"""The Celery application: one queue per service, JSON only, late acks."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ticketing.settings")

SERVICE_QUEUES = ("accounts", "concerts", "payments")

app = Celery("ticketing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name, routing_key=name, durable=True) for name in SERVICE_QUEUES]
app.autodiscover_tasks()
