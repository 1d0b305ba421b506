"""MATLAB and GNU Octave literals."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.engine.errors import ParameterError
from airflow_notebook_provider.engine.translators.base import Translator, byte_escape, no_nul


class MatlabTranslator(Translator):
    """MATLAB literals, as papermill writes them: ``"..."`` strings (``""`` for a quote), cell arrays for lists,
    ``containers.Map`` for dicts, ``NaN`` for None. MATLAB strings take no backslash escapes, so text with
    control characters or outside printable ASCII is refused rather than silently changed."""

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
        return "{" + ", ".join(self.translate(v) for v in value) + "}"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        keys = ", ".join("'" + self._ascii(str(k)).replace("'", "''") + "'" for k in value)
        return f"containers.Map({{{keys}}}, {{{', '.join(self.translate(v) for v in value.values())}}})"

    def _ascii(self, text: str) -> str:
        self.translate_str(text)
        return text

    def assign(self, name: str, literal: str) -> str:
        return f"{name} = {literal};"

    def read_env(self, variable: str) -> str:
        return f"getenv('{variable}')"


class OctaveTranslator(MatlabTranslator):
    """GNU Octave: MATLAB's syntax, but double-quoted strings take C escapes, so any text round-trips (non-ASCII
    as its UTF-8 bytes, which is how Octave holds text)."""

    language = "octave"

    def translate_str(self, value: str) -> str:
        no_nul(value, "Octave")
        return '"' + byte_escape(value, '\\"', lambda b: f"\\{b:03o}") + '"'
