"""A model alias as the client sees it: ``Client.set_alias`` and ``Client.alias`` return one."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Alias:
    """Your name for a model ("production"): every model route takes it for the model id.

    Attributes:
        name: The alias.
        model_id: The model it points at now.
        history: Its moves, newest first: ``{by, key, from, to, at}`` (``from`` None: made).
    """

    name: str
    model_id: str
    history: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: dict) -> Alias:
        """The ``Alias`` of a ``/v1/aliases/{name}`` answer."""
        return cls(body["name"], body["model_id"], body.get("history") or [])
