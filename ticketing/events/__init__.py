"""The events the services exchange: declared once in ``catalogue``, typed and checked by ``schema``."""
