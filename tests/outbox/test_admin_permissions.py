"""Admin actions that publish or replay events need a permission of their own, not just view rights."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from tests.conftest import all_databases
from ticketing.outbox.models import DeadLetter, OutboxMessage, OutboxState

pytestmark = [all_databases]


@pytest.fixture
def staff(make_user: Any) -> Any:
    """A staff user who may view the concerts outbox and dead letters, plus the permissions asked for."""

    def make(*extra: str) -> Client:
        user = make_user()
        user.is_staff = True
        user.save(using="default")
        codenames = ["view_concertsoutboxmessage", "view_concertsdeadletter", *extra]
        user.user_permissions.set(Permission.objects.using("default").filter(codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def dead_row() -> OutboxMessage:
    return OutboxMessage.objects.using("concerts").create(
        event="concert-reserve", aggregate_id="1", correlation_id="1", payload={}, state=OutboxState.DEAD, attempts=12
    )


@pytest.fixture
def dead_letter() -> DeadLetter:
    return DeadLetter.objects.using("concerts").create(
        event_id=uuid.uuid4(), event="payment-fail", correlation_id="1", envelope={}, error="boom"
    )


OUTBOX_URL = reverse("admin:outbox_concertsoutboxmessage_changelist")
DEAD_LETTERS_URL = reverse("admin:outbox_concertsdeadletter_changelist")


def act(client: Client, url: str, action: str, pk: Any) -> Any:
    return client.post(url, {"action": action, "_selected_action": [str(pk)]}, follow=True)


def test_with_view_rights_only_publish_again_is_neither_offered_nor_done(staff: Any, dead_row: OutboxMessage) -> None:
    # given a staff user who may only view the outbox
    client = staff()

    # when they open the list and post the action anyway
    listing = client.get(OUTBOX_URL)
    act(client, OUTBOX_URL, "publish_again", dead_row.pk)

    # then the action is not offered and the row is still dead
    assert listing.status_code == 200
    assert "publish_again" not in listing.content.decode()
    assert OutboxMessage.objects.using("concerts").get(pk=dead_row.pk).state == OutboxState.DEAD


def test_with_the_replay_permission_publish_again_makes_the_row_due(staff: Any, dead_row: OutboxMessage) -> None:
    # given a staff user who may also publish outbox messages again
    client = staff("replay_outboxmessage")

    # when they run the action on a dead row
    act(client, OUTBOX_URL, "publish_again", dead_row.pk)

    # then the row is pending again
    assert OutboxMessage.objects.using("concerts").get(pk=dead_row.pk).state == OutboxState.PENDING


def test_with_view_rights_only_dead_letters_are_not_replayed(staff: Any, dead_letter: DeadLetter) -> None:
    # given a staff user who may only view dead letters
    client = staff()

    # when they post the replay action
    listing = client.get(DEAD_LETTERS_URL)
    act(client, DEAD_LETTERS_URL, "replay_to_consumer", dead_letter.pk)

    # then it is not offered and the letter was never replayed
    assert "replay_to_consumer" not in listing.content.decode()
    assert DeadLetter.objects.using("concerts").get(pk=dead_letter.pk).replayed_at is None


def test_with_the_replay_permission_dead_letters_are_replayed(staff: Any, dead_letter: DeadLetter) -> None:
    # given a staff user who may replay dead letters
    client = staff("replay_deadletter")

    # when they replay one
    act(client, DEAD_LETTERS_URL, "replay_to_consumer", dead_letter.pk)

    # then it was sent to its consumer again
    assert DeadLetter.objects.using("concerts").get(pk=dead_letter.pk).replayed_at is not None
