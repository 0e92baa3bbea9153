"""The deployment files (Dockerfile, docker-compose.yml) as the deployment tests read them."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent


def read_dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def read_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def instructions(dockerfile: str, keyword: str) -> list[str]:
    """The arguments of every ``keyword`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    pattern = rf"^\s*{keyword}\s+(.*)$"
    return [m.group(1).strip() for m in re.finditer(pattern, joined, re.MULTILINE | re.IGNORECASE)]


def dockerfile_arg(dockerfile: str, name: str) -> str:
    """The default value of ``ARG name=value`` in the Dockerfile."""
    for arg in instructions(dockerfile, "ARG"):
        key, _, value = arg.partition("=")
        if key == name:
            return value
    raise KeyError(name)


def compose_seconds(duration: str) -> float:
    """A compose duration such as ``30s`` or ``1m30s`` in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)
