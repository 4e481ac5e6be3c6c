"""One progress bar for long writes, on a terminal or in a notebook (tqdm).

The producer reports progress through a callback, ``progress(done)`` with the
number of readings written so far; :func:`bar` turns that into a tqdm bar.
Library code never draws one: the CLI and the notebook helpers do.
"""

from __future__ import annotations

import sys
from typing import Callable


def bar(total: int, desc: str, notebook: bool = False) -> tuple[Callable[[int], None], Callable[[], None]]:
    """``(update, close)`` for a bar of ``total`` readings: ``update(done)`` moves it to ``done``.

    On a terminal (``notebook=False``) the bar goes to stderr, only when that is
    a terminal, and leaves no line behind; in a notebook it is a widget
    (``tqdm.auto``) that stays.
    """
    if notebook:
        from tqdm.auto import tqdm
        b = tqdm(total=total, unit=" readings", unit_scale=True, desc=desc)
    else:
        from tqdm import tqdm
        b = tqdm(total=total, unit=" readings", unit_scale=True, desc=desc, disable=None,
                 file=sys.stderr, leave=False)
    last = [0]

    def update(done: int) -> None:
        b.update(done - last[0])
        last[0] = done
    return update, b.close
