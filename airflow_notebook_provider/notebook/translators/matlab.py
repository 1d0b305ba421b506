"""MATLAB and GNU Octave literals."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators.base import (
    Translator,
    byte_escape,
    no_nul,
    no_surrogates,
    string_keys,
)

LINE = 200
"""Longest stretch of a literal on one line. octave_kernel types code into a terminal, which cuts a line at 4095
bytes; and Octave reports the resulting syntax error as plain output, so the run would go on with the notebook's
defaults. Long strings and cell arrays go on several lines, joined with ``...``."""


def join(items: list[str], sep: str = ", ") -> str:
    """``items`` joined by ``sep``, continuing on a new line (``...``) before a line would pass ``LINE``."""
    out = ""
    for i, item in enumerate(items):
        if i:
            line = out.rsplit("\n", 1)[-1]
            out += sep.rstrip() + " ...\n" if len(line) + len(sep) + len(item.split("\n", 1)[0]) > LINE else sep
        out += item
    return out


class MatlabTranslator(Translator):
    """MATLAB literals, as papermill writes them: ``"..."`` strings (``""`` for a quote), cell arrays for lists,
    ``containers.Map`` for dicts, ``NaN`` for None. MATLAB strings take no backslash escapes, so text with
    control characters or outside printable ASCII is refused rather than silently changed. Dict keys must be
    non-empty strings (a containers.Map has one key type; papermill would turn None into the key 'None')."""

    language = "matlab"
    nan, inf = "NaN", "Inf"
    comment_prefix = "%"

    def translate_none(self) -> str:
        return "NaN"

    def translate_str(self, value: str) -> str:
        if not all(" " <= ch <= "~" for ch in value):
            raise ParameterError(f"{self.language} parameters take printable ASCII text only; {value!r} has other "
                                 "characters (pass such text in a file or an environment variable).")
        return '"' + value.replace('"', '""') + '"'

    def translate_list(self, value: list[Any]) -> str:
        return "{" + join([self.translate(v) for v in value]) + "}"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        if not value:
            return "containers.Map()"
        string_keys(value, f"a {self.language} containers.Map key here")
        keys = join([self.translate_key(k) for k in value])
        values = join([self.translate(v) for v in value.values()])
        sep = ", ...\n" if "\n" in keys + values else ", "
        return f"containers.Map({{{keys}}}{sep}{{{values}}})"

    def translate_key(self, key: str) -> str:
        self.translate_str(key)  # the same refusals as a value
        return "'" + key.replace("'", "''") + "'"

    def assign(self, name: str, literal: str) -> str:
        return f"{name} = {literal};"

    def read_env(self, variable: str) -> str:
        return f"getenv('{variable}')"


class OctaveTranslator(MatlabTranslator):
    """GNU Octave: MATLAB's syntax, but double-quoted strings take C escapes, so any text round-trips (non-ASCII
    as its UTF-8 bytes, which is how Octave holds text). A long string is split into pieces concatenated in
    ``[...]`` over several lines (see ``LINE``); lone surrogates are refused."""

    language = "octave"

    def translate_str(self, value: str) -> str:
        no_nul(value, "Octave")
        no_surrogates(value, "Octave")
        pieces, piece = [], ""
        for ch in value:
            piece += byte_escape(ch, '\\"', lambda b: f"\\{b:03o}")
            if len(piece) >= LINE:
                pieces.append(f'"{piece}"')
                piece = ""
        if piece or not pieces:
            pieces.append(f'"{piece}"')
        return pieces[0] if len(pieces) == 1 else "[" + join(pieces, " ") + "]"

    def translate_key(self, key: str) -> str:
        return self.translate_str(key)
