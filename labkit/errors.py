"""One exception type for everything a user can get wrong.

The CLI turns a :class:`LabkitError` into a single line on stderr
(``labkit: error: … (hint: …)``) and a non-zero exit, never a traceback.
"""

from __future__ import annotations


class LabkitError(Exception):
    """An error the user can fix, with a hint that says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: The library parameter the message starts with (e.g. ``days``); the CLI names its flag instead.
        self.param = param

    def with_flag(self, flag: str) -> "LabkitError":
        """The same error in command-line terms: the leading parameter name replaced by ``flag``."""
        if not self.param or not self.message.startswith(self.param):
            return self
        return LabkitError(flag + self.message[len(self.param):], self.hint)

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: in a notebook, the CLI's one line instead of a traceback (the cell still fails)."""
        return [f"labkit: error: {self}"]


class SimulatedCrash(Exception):
    """Raised inside a consumer thread to stop it dead, without saving anything."""
