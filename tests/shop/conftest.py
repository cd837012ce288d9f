"""The shop in a real browser: Debian's Chromium driven by Playwright, against a live server on the real stack.

Screenshots of every step are saved under var/screenshots/ (not committed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import ROOT
from tests.saga.conftest import audited  # noqa: F401  (every saga test here ends with the audit)
from ticketing.accounts.models import User
from ticketing.concerts.models import Concert, Performance, Seat

# Playwright's sync API keeps an event loop in the test's thread; the test's own ORM calls are still
# synchronous, one at a time, so Django's guard against async use does not apply to them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
STEP_TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Visitor:
    """One person's browser window, with a screenshot helper named after the test."""

    page: Any
    base: str
    name: str

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def snap(self, step: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def visitor(browser: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Visitor]]:
    """A new browser window (context) for a person; logged in when given a user; Korean unless told."""
    contexts: list[Any] = []
    test_name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]

    def open_window(user: User | None = None, language: str = "ko", viewport: tuple[int, int] = (1000, 900)) -> Visitor:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        cookies = [{"name": "django_language", "value": language, "url": live_server.url}]
        if user is not None:
            client = Client()
            client.force_login(user)
            cookies.append({"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url})
        context.add_cookies(cookies)
        suffix = f"-{len(contexts)}" if len(contexts) > 1 else ""
        return Visitor(context.new_page(), live_server.url, test_name + suffix)

    yield open_window
    for context in contexts:
        context.close()


@pytest.fixture
def performance() -> Performance:
    """A performance of a concert with a Korean and an English title: 6 VIP seats, 12 R seats and 14 S seats."""
    concert = Concert.objects.using("concerts").create(
        title="봄밤 콘서트: 별이 빛나는 밤", title_en="Spring Night Concert: Starry Night", artist="새벽 밴드"
    )
    performance = Performance.objects.using("concerts").create(
        concert=concert, starts_at=timezone.now() + timedelta(days=30), venue="예술의전당"
    )
    grades = [("VIP", 90_000, 6), ("R", 40_000, 12), ("S", 30_000, 14)]
    Seat.objects.using("concerts").bulk_create(
        Seat(performance=performance, label=f"{grade}-{n:02d}", grade=grade, price=price)
        for grade, price, count in grades
        for n in range(1, count + 1)
    )
    return performance


def seat_of(performance: Performance, label: str) -> Seat:
    return Seat.objects.using("concerts").get(performance=performance, label=label)


def seat_button(page: Any, seat: Seat) -> Any:
    return page.locator(f'button.seat[data-seat-id="{seat.id}"]')


def book_in_page(page: Any, seat: Seat) -> None:
    """Choose one seat on the map and press the booking button."""
    seat_button(page, seat).click()
    page.locator("#book").click()
