"""The embedded broker: kombu's filesystem transport, made safe for several processes at once.

Stock kombu writes a message by creating its file under the final name and then filling it, so a
consumer polling the folder can take the file while it is still empty and die on the JSON it cannot
parse (kombu issue 1551); it also moves a taken file to the system's temporary folder, which on
another filesystem is a copy that two consumers can both make. Here:

- a producer writes a message to a hidden temporary name in the queue folder and renames it into
  place, so a consumer sees a whole message or none;
- a consumer claims a message by renaming it into ``claimed/`` (same filesystem, atomic: one
  consumer wins) under a name carrying its process id, and deletes it only when the message is
  acked or rejected; the claims of a process that died are put back in the queue by the next
  channel that opens, so a killed worker loses nothing (the consumers' inbox absorbs the repeat);
- a file that cannot be read as a message is moved to ``unreadable/`` with an ERROR in the log,
  for an operator to look at, and the consumer carries on with the next one;
- an exchange's binding table is created whole (written aside, then linked into place).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

CLAIM_SEPARATOR = "~"


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims: dict[str, Path] = {}
        for folder in (self.claimed_folder, self.unreadable_folder):
            folder.mkdir(parents=True, exist_ok=True)
        self.return_orphaned_claims()

    # --- Folders -----------------------------------------------------------------------------------

    @property
    def queue_folder(self) -> Path:
        return Path(self.data_folder_in)

    @property
    def claimed_folder(self) -> Path:
        return Path(self.transport_options.get("claimed_folder") or self.queue_folder.parent / "claimed")

    @property
    def unreadable_folder(self) -> Path:
        return Path(self.transport_options.get("unreadable_folder") or self.queue_folder.parent / "unreadable")

    # --- Producing ---------------------------------------------------------------------------------

    # kombu's two base classes disagree on the name of the second argument.
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        data = str_to_bytes(dumps(message))
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        write_whole(Path(self.data_folder_out) / name, data)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        # Stock kombu creates the table file empty and fills it under a lock taken after the open: a
        # reader could parse the empty file. Make sure it exists whole; kombu then updates it in place.
        file = self._exchange_file(exchange)
        if not file.exists():
            self.control_folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                create_whole(file, str_to_bytes(dumps([])))
        super()._queue_bind(exchange, routing_key, pattern, queue)

    # --- Consuming ---------------------------------------------------------------------------------

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.queue_folder)):
            if name.partition(".")[2] != wanted:
                continue  # another queue's message, or a temporary file being written
            claimed = self.claimed_folder / f"{os.getpid()}{CLAIM_SEPARATOR}{name}"
            try:
                os.rename(self.queue_folder / name, claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            message = self.read_claimed(claimed)
            if message is not None:
                self.claims[message["properties"]["delivery_tag"]] = claimed
                return message
        raise Empty()

    def read_claimed(self, claimed: Path) -> dict[str, Any] | None:
        try:
            message = loads(bytes_to_str(claimed.read_bytes()))
            if not isinstance(message, dict) or "delivery_tag" not in message.get("properties", {}):
                raise ValueError("not a kombu message (no properties.delivery_tag)")
        except Exception as exc:  # whatever is wrong with the file, it must not stop the consumer
            self.set_aside(claimed, exc)
            return None
        return message

    def set_aside(self, claimed: Path, error: BaseException) -> None:
        target = self.unreadable_folder / claimed.name.partition(CLAIM_SEPARATOR)[2]
        os.replace(claimed, target)
        logger.error("embedded broker: %s is not a readable message (%r); moved it to %s", claimed.name, error, target)

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self.release_claim(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)  # a requeue writes the message again first
        self.release_claim(delivery_tag)

    def _restore(self, message: Any) -> None:
        super()._restore(message)  # an unacked message put back (the channel closes)
        self.release_claim(message.delivery_tag)

    def release_claim(self, delivery_tag: str) -> None:
        claimed = self.claims.pop(delivery_tag, None)
        if claimed is None:
            return
        if self.store_processed:
            os.replace(claimed, Path(self.processed_folder) / claimed.name.partition(CLAIM_SEPARATOR)[2])
        else:
            claimed.unlink(missing_ok=True)

    def return_orphaned_claims(self) -> None:
        """Put back in the queue the messages claimed by processes that no longer run."""
        for claimed in self.claimed_folder.iterdir():
            pid, _, name = claimed.name.partition(CLAIM_SEPARATOR)
            if not pid.isdigit() or process_alive(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):  # another channel returned it first
                os.rename(claimed, self.queue_folder / name)
                logger.warning("embedded broker: returned %s, claimed by process %s that is gone", name, pid)


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = virtual.BrokerState()  # not shared with a stock filesystem transport in the process


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees part of it."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_synced(temporary, data)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ChannelError(f"Cannot add file {str(path)!r} to directory") from exc


def create_whole(path: Path, data: bytes) -> None:
    """Like ``write_whole``, but raise FileExistsError rather than replace an existing file."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_synced(temporary, data)
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_synced(path: Path, data: bytes) -> None:
    # On disk before the rename, so that a crash leaves the old state or the whole message.
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
