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
_INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
"""Unicode's format characters (category Cf, Unicode 15: bidi embeddings, overrides and isolates, zero-width
characters, the BOM, tag characters), the line and paragraph separators and lone surrogates: on a terminal they
reorder text, hide it or break a line where none is seen (``Trojan Source``)."""


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\r" if char == "\r" else f"\\x{ord(char):02x}"


def _escape_invisible(match: re.Match[str]) -> str:
    cp = ord(match.group())
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def printable(text: object) -> str:
    """``text`` with colour and cursor codes removed, every other control character escaped (``\\x1b``) and
    every invisible character that reorders or hides text written as its escape (``\\u202e``).

    Newlines and tabs stay; ``\\r\\n`` becomes ``\\n``. What remains of an OSC sequence (``ESC ] 0;title BEL``) is
    shown as inert text (``\\x1b]0;title\\x07``), so a reader sees that the notebook tried something.
    """
    text = _CONTROL.sub(_escape, _CSI.sub("", str(text)).replace("\r\n", "\n"))
    return _INVISIBLE.sub(_escape_invisible, text)
