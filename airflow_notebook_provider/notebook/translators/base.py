"""The ``Translator`` base class and the string escapes the languages share."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from airflow_notebook_provider.notebook.errors import ParameterError

EXACT_FLOAT_INT = 2**53  # integers a double holds exactly


class Translator:
    """Writes normalized values as literals of one kernel language; one method per value type."""

    comment_prefix = "#"
    language = "python"
    # Literals of NaN and +infinity (-infinity is "-" + inf unless neg_inf says otherwise); None: Python's repr.
    nan: str | None = None
    inf: str | None = None
    neg_inf: str | None = None
    long_suffix = ""  # appended to integers beyond 32 bits (Scala, C#, F#: ``L``)
    big_int: str | None = None  # format of an integer beyond 64 bits, where ``L`` no longer compiles; None: digits

    def translate(self, value: Any) -> str:
        if value is None:
            return self.translate_none()
        if isinstance(value, bool):
            return self.translate_bool(value)
        if isinstance(value, int):
            return self.translate_int(value)
        if isinstance(value, float):
            return self.translate_float(value)
        if isinstance(value, str):
            return self.translate_str(value)
        if isinstance(value, tuple):
            return self.translate_tuple(value)
        if isinstance(value, list):
            return self.translate_list(value)
        if isinstance(value, dict):
            return self.translate_dict(value)
        raise ParameterError(f"No literal for a value of type {type(value).__name__}: {value!r}")

    def translate_none(self) -> str:
        return "None"

    def translate_bool(self, value: bool) -> str:
        return "true" if value else "false"

    def translate_int(self, value: int) -> str:
        if self.big_int is not None and not -(2**63) <= value < 2**63:
            return self.big_int.format(value)
        return int.__repr__(value) + ("" if -(2**31) <= value < 2**31 else self.long_suffix)

    def translate_float(self, value: float) -> str:
        if self.nan is not None and math.isnan(value):
            return self.nan
        if self.inf is not None and math.isinf(value):
            return self.inf if value > 0 else (self.neg_inf or "-" + self.inf)
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        raise NotImplementedError

    def translate_list(self, value: list[Any]) -> str:
        raise NotImplementedError

    def translate_tuple(self, value: tuple[Any, ...]) -> str:
        return self.translate_list(list(value))

    def translate_dict(self, value: dict[Any, Any]) -> str:
        raise NotImplementedError

    def assign(self, name: str, literal: str) -> str:
        return f"{name} = {literal}"

    def check_name(self, name: str) -> None:
        """Refuse a parameter name this language cannot take (Python's identifier rules are checked before)."""

    def read_env(self, variable: str) -> str:
        """An expression reading environment variable ``variable`` (how secret parameters reach the kernel)."""
        raise ParameterError(f"Secret parameters are not supported for {self.language} kernels.")

    def comment(self, text: str) -> str:
        return f"{self.comment_prefix} {text}"

    def codify(
        self, parameters: Mapping[str, Any], comment: str = "Parameters", secret_env: Mapping[str, str] | None = None
    ) -> str:
        lines = [self.comment(comment)]
        for name, value in parameters.items():
            self.check_name(name)
            try:
                lines.append(self.assign(name, self.translate(value)))
            except ParameterError as exc:
                raise ParameterError(f"Parameter {name!r}: {exc}") from None
        if secret_env:
            lines.append(self.comment("Secret parameters: read from the kernel's environment, never written here"))
            for name, var in secret_env.items():
                self.check_name(name)
                lines.append(self.assign(name, self.read_env(var)))
        return "\n".join(lines) + "\n"


def c_escape(value: str, quote: str, unicode: Callable[[int], str], extra: Mapping[str, str] | None = None) -> str:
    """``value`` between double quotes with C-style escapes; ``unicode`` writes any other non-printable-ASCII code
    point. ``extra`` adds the language's own escapes (``$`` where it interpolates)."""
    simple = {"\\": "\\\\", quote: "\\" + quote, "\n": "\\n", "\r": "\\r", "\t": "\\t", **(extra or {})}
    out = []
    for ch in value:
        if ch in simple:
            out.append(simple[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(unicode(ord(ch)))
    return quote + "".join(out) + quote


def byte_escape(value: str, backslashed: str, byte: Callable[[int], str]) -> str:
    """Printable ASCII as it is (``backslashed`` characters behind a backslash), anything else as its UTF-8 bytes
    written by ``byte``: for languages whose strings hold bytes (Octave) or are typed in as keystrokes (bash)."""
    out = []
    for ch in value:
        if ch in backslashed:
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(byte(b) for b in ch.encode("utf-8"))
    return "".join(out)


def no_nul(value: str, language: str) -> None:
    if "\x00" in value:
        raise ParameterError(f"a string with a NUL character cannot be a {language} string; remove it.")


def string_keys(value: dict[Any, Any], what: str) -> None:
    """Refuse a dict key that is not a non-empty string, for languages whose ``what`` takes nothing else."""
    for k in value:
        if not isinstance(k, str) or not k:
            raise ParameterError(f"the dict key {k!r} cannot be {what}; use non-empty string keys.")


def no_surrogates(value: str, language: str) -> None:
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            raise ParameterError(f"a string with a lone surrogate ({ch!r}) is not Unicode text and cannot be a {language} "
                                 "string (it usually comes from a bad decode); fix the text.")


def utf16_escape(cp: int) -> str:
    """``\\uXXXX``, as a surrogate pair beyond the BMP (Java, Scala, C#)."""
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    cp -= 0x10000
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"
