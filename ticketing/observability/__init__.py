"""Shared infrastructure: metrics, tracing, logs and health checks for every process of the system.

Like the outbox, any app may import it; it imports no service app. Services feed it through the
small functions of ``metrics`` and ``tracing`` and, for gauges that need a query, ``gauges.register``.
"""
