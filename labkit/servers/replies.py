"""Redis replies as text.

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
