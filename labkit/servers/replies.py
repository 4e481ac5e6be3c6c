"""Redis replies as text, and the one parser of ``CLUSTER NODES``.

redis-py returns ``bytes`` unless a client decodes responses, and labkit's
clients do not (readings are parsed straight from bytes, which is faster).
Where a reply becomes a name, an ID or a line for a person, :func:`text` turns
it into ``str`` whichever kind of client produced it.
"""

from __future__ import annotations


def text(v, errors: str = "strict") -> str:
    """``v`` as ``str``: bytes decoded as UTF-8 (``errors="replace"`` for text that may not be), anything
    else through ``str()``."""
    return v.decode(errors=errors) if isinstance(v, bytes) else str(v)


def decoded(v, errors: str = "strict"):
    """``v`` with bytes decoded as UTF-8; anything else (a number, ``None``, a list) unchanged."""
    return v.decode(errors=errors) if isinstance(v, bytes) else v


def text_fields(fields: dict, errors: str = "strict") -> dict[str, str]:
    """A stream entry's or a hash's fields with names and values as ``str``."""
    return {text(k): text(v, errors) for k, v in fields.items()}


def parse_nodes(reply) -> list[dict]:
    """``CLUSTER NODES`` (the reply as bytes or text), one dict per node: ``id``, ``host``, ``port``,
    ``address`` (``host:port``), ``flags`` (a set: ``myself``, ``master``, ``fail``, …), ``master`` (its
    master's id, or None), ``link`` and ``slots`` (ranges ``(first, last)``; a slot being migrated is left out)."""
    out = []
    for line in text(reply).splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        addr = parts[1].split("@")[0]
        host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "0")
        slots = []
        for s in parts[8:]:
            if s.startswith("["):  # a slot being migrated
                continue
            a, _, b = s.partition("-")
            slots.append((int(a), int(b or a)))
        out.append({"id": parts[0], "host": host, "port": int(port), "address": f"{host or '127.0.0.1'}:{port}",
                    "flags": set(parts[2].split(",")), "master": None if parts[3] == "-" else parts[3],
                    "link": parts[7], "slots": slots})
    return out
