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


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 lines of a byte stream, split on LF only (a trailing CR is dropped).

    ``requests``' ``iter_lines`` would also split on U+2028 and on a CR and LF that arrive in
    different chunks, making spurious blank lines that end events early.
    """
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.removesuffix(b"\r").decode("utf-8")
    if buffer:
        yield buffer.removesuffix(b"\r").decode("utf-8")


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
