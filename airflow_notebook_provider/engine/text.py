"""Text taken from a notebook, made safe to show on a terminal or in a report.

A notebook is data that its author (or anyone who can write its output location) controls: an error message, a
traceback, a parameter value or a cell's source may carry terminal escape sequences that set the window title,
plant a hyperlink (``ESC ] 8``), move the cursor or clear the screen. ``printable`` is the one function every
piece of such text goes through before it is shown.
"""

from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
"""A complete CSI sequence (colours, cursor moves): tracebacks are full of colour codes, dropped silently."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Every other control character: C0 but newline and tab, DEL, C1 (``\\x9b`` is an 8-bit CSI, ``\\x9d`` an OSC)."""


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\r" if char == "\r" else f"\\x{ord(char):02x}"


def printable(text: object) -> str:
    """``text`` with colour and cursor codes removed and every other control character escaped (``\\x1b``).

    Newlines and tabs stay; ``\\r\\n`` becomes ``\\n``. What remains of an OSC sequence (``ESC ] 0;title BEL``) is
    shown as inert text (``\\x1b]0;title\\x07``), so a reader sees that the notebook tried something.
    """
    return _CONTROL.sub(_escape, _CSI.sub("", str(text)).replace("\r\n", "\n"))
