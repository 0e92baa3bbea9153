"""A minimal Server-Sent Events reader over a streamed ``requests`` response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass
class Event:
    """One event: its ``event`` name, ``id`` (None when the event gave none) and ``data``."""

    event: str
    id: str | None
    data: str


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from decoded lines: fields until a blank line; ``:`` lines are comments."""
    name, event_id, data = "message", None, []
    for line in lines:
        if not line:
            if data:
                yield Event(name, event_id, "\n".join(data))
            name, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue  # a heartbeat
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "id":
            event_id = value
        elif field == "data":
            data.append(value)
