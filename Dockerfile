# One image for every process of the production shape (web, one worker per queue, beat, migrate).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

# The code stays root's and read-only; the app user may write only under var/.
COPY . .
RUN mkdir -p var && chown app:app var
USER app

# Static files of the admin and the API docs, served by WhiteNoise from var/static.
# (The throwaway key lives in this one build step, not in the image, which refuses to start without
# a SECRET_KEY of its own.)
RUN SECRET_KEY="collectstatic-only-$(date +%s%N)-not-a-runtime-key" \
    python manage.py collectstatic --noinput -v 0

EXPOSE 8000
CMD ["granian", "--interface", "asgi", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "ticketing.front.asgi:application"]
