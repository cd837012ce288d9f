"""The embedded broker (ticketing.embedded_broker) against the races of kombu's filesystem transport."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from types import FrameType
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue
from kombu.transport import filesystem

from ticketing import embedded_broker

WRITER_FILES = {filesystem.__file__, embedded_broker.__file__}


def folders(root: Path) -> dict[str, Any]:
    options = {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "control_folder": str(root / "control"),
        "processed_folder": str(root / "processed"),
        "claimed_folder": str(root / "claimed"),
        "unreadable_folder": str(root / "unreadable"),
    }
    for folder in ("queue", "control", "processed"):
        (root / folder).mkdir(exist_ok=True)
    return options


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Callable[[type], Connection]]:
    """Open connections of a transport class on one broker folder."""
    opened: list[Connection] = []

    def open_connection(transport: type) -> Connection:
        connection = Connection("filesystem://", transport=transport, transport_options=folders(tmp_path))
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.release()


@pytest.fixture
def queue() -> Queue:
    name = f"q{uuid.uuid4().hex[:8]}"  # the transport's binding state lives in the process: a new name per test
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def publish(connection: Connection, queue: Queue, body: Any) -> None:
    Producer(connection.default_channel, serializer="json").publish(
        body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]
    )


def publish_while_reading(writer: Connection, reader: Connection, queue: Queue, body: Any) -> list[Any]:
    """Publish ``body``, letting ``reader`` poll the queue at every line the writer's transport runs.

    Returns what each poll saw: a message, ``None`` for an empty queue, or the exception it raised.
    """
    seen: list[Any] = []
    polling = False

    def poll_line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal polling
        if event == "line" and not polling:
            polling = True
            try:
                seen.append(reader.default_channel._get(queue.name))
            except Empty:
                seen.append(None)
            except Exception as exc:
                seen.append(exc)
            finally:
                polling = False
        return poll_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return poll_line if not polling and frame.f_code.co_filename in WRITER_FILES else None

    reader.default_channel  # noqa: B018 (opened before tracing starts)
    sys.settrace(on_call)
    try:
        publish(writer, queue, body)
    finally:
        sys.settrace(None)
    return seen


def test_a_reader_polling_during_a_write_never_sees_a_partial_message(
    connect: Callable[[type], Connection], queue: Queue
) -> None:
    # given a producer and a consumer of the embedded broker on one folder
    writer, reader = connect(embedded_broker.Transport), connect(embedded_broker.Transport)
    # when the consumer polls the queue at every step of the producer's write
    seen = publish_while_reading(writer, reader, queue, {"n": 1})
    # then it saw an empty queue or the whole message, never an error, and the message exactly once
    assert not [s for s in seen if isinstance(s, Exception)], seen
    taken = [s for s in seen if s is not None]
    if not taken:
        taken = [reader.default_channel._get(queue.name)]
    assert len(taken) == 1
    channel = reader.default_channel
    assert channel.Message(taken[0], channel=channel).decode() == {"n": 1}
    with pytest.raises(Empty):
        reader.default_channel._get(queue.name)


def test_stock_kombu_lets_a_reader_see_a_message_file_before_it_is_filled(
    connect: Callable[[type], Connection], queue: Queue
) -> None:
    # given the stock filesystem transport (what the embedded default used before)
    writer, reader = connect(filesystem.Transport), connect(filesystem.Transport)
    # when the consumer polls at every step of the producer's write
    seen = publish_while_reading(writer, reader, queue, {"n": 1})
    # then one poll found the file created but still empty and could not parse it (kombu issue 1551):
    # the race the test above would catch
    errors = [s for s in seen if isinstance(s, Exception)]
    assert errors
    assert "Expecting value" in str(errors[0])


def test_an_unreadable_file_is_set_aside_and_the_consumer_carries_on(
    connect: Callable[[type], Connection], queue: Queue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a queue holding an empty file, a JSON file that is no message, then a real message
    producer = connect(embedded_broker.Transport)
    publish(producer, queue, {"n": 1})  # declares the queue (and creates the folders)
    (tmp_path / "queue" / f"0_empty.{queue.name}.msg").write_bytes(b"")
    (tmp_path / "queue" / f"00_list.{queue.name}.msg").write_bytes(b"[1, 2]")  # both sort before the message
    received: list[Any] = []
    consumer = connect(embedded_broker.Transport)
    # when a consumer drains the queue
    with (
        caplog.at_level(logging.ERROR, logger="ticketing.embedded_broker"),
        consumer.Consumer([queue], accept=["json"], callbacks=[lambda body, message: received.append(body)]),
    ):
        consumer.drain_events(timeout=2)
    # then it received the real message, and the two bad files wait in unreadable/ with an ERROR each
    assert received == [{"n": 1}]
    assert sorted(p.name for p in (tmp_path / "unreadable").iterdir()) == [
        f"00_list.{queue.name}.msg",
        f"0_empty.{queue.name}.msg",
    ]
    assert len([r for r in caplog.records if "not a readable message" in r.getMessage()]) == 2


def test_a_message_stays_claimed_until_acked(
    connect: Callable[[type], Connection], queue: Queue, tmp_path: Path
) -> None:
    # given a message taken by a consumer but not yet acked
    producer, consumer = connect(embedded_broker.Transport), connect(embedded_broker.Transport)
    publish(producer, queue, {"n": 1})
    message = consumer.SimpleQueue(queue).get(timeout=2)
    assert len(list((tmp_path / "claimed").iterdir())) == 1
    # when it is acked
    message.ack()
    # then its file is gone for good
    assert list((tmp_path / "claimed").iterdir()) == []
    assert list((tmp_path / "queue").glob(f"*.{queue.name}.msg")) == []


def test_a_rejected_message_goes_back_to_the_queue(
    connect: Callable[[type], Connection], queue: Queue, tmp_path: Path
) -> None:
    # given a message taken by a consumer
    producer, consumer = connect(embedded_broker.Transport), connect(embedded_broker.Transport)
    publish(producer, queue, {"n": 1})
    simple = consumer.SimpleQueue(queue)
    # when it is rejected with requeue
    simple.get(timeout=2).requeue()
    # then it is in the queue once again, and no claim is left behind
    assert simple.get(timeout=2).payload == {"n": 1}
    assert len(list((tmp_path / "claimed").iterdir())) == 1  # the second delivery's claim


def test_the_claims_of_a_dead_process_return_to_the_queue(
    connect: Callable[[type], Connection], queue: Queue, tmp_path: Path
) -> None:
    # given a message claimed by a consumer process that then died (kill -9: no ack, no restore)
    producer = connect(embedded_broker.Transport)
    publish(producer, queue, {"n": 1})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    (name,) = [p.name for p in (tmp_path / "queue").glob(f"*.{queue.name}.msg")]
    (tmp_path / "queue" / name).rename(tmp_path / "claimed" / f"{int(dead.stdout)}~{name}")
    # when another process opens a channel on the broker
    consumer = connect(embedded_broker.Transport)
    # then the message is back in the queue and delivered again
    assert consumer.SimpleQueue(queue).get(timeout=2).payload == {"n": 1}
