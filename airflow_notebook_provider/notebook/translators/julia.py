"""Julia literals."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.notebook.translators.base import Translator, c_escape, no_surrogates


def _julia_escape(cp: int) -> str:
    # Julia's \x is a byte (right for ASCII only); \u takes up to 4 hex digits and \U up to 8, with no braces.
    return f"\\x{cp:02x}" if cp < 0x80 else f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


class JuliaTranslator(Translator):
    """Julia literals: ``nothing``, ``Dict(k => v)``, ``[a, b]``, as papermill writes them. ``$`` is escaped (Julia
    interpolates it: papermill's ``"$(run(...))"`` runs code), U+0080..U+00FF are ``\\u00XX`` (papermill's
    ``\\xfc`` is a raw byte, invalid UTF-8), lone surrogates are refused, and a list mixing bools, integers and
    floats (and nothing else but ``nothing``) is ``Any[...]`` (``[1, 2.5]`` would make 1 the float 1.0, ``[1, true]`` make true the integer 1)."""

    language = "julia"
    nan, inf = "NaN", "Inf"

    def translate_none(self) -> str:
        return "nothing"


    def translate_str(self, value: str) -> str:
        no_surrogates(value, "Julia")
        return c_escape(value, '"', _julia_escape, {"$": "\\$"})

    def translate_list(self, value: list[Any]) -> str:
        # Julia promotes a vector of numbers (and `nothing`s) to one number type; with anything else in it the
        # vector is Vector{Any} anyway, as papermill's text already gives.
        kinds = {type(v) for v in value} - {type(None)}
        promoted = len(kinds) > 1 and kinds <= {bool, int, float}
        return ("Any[" if promoted else "[") + ", ".join(self.translate(v) for v in value) + "]"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "Dict(" + ", ".join(f"{self.translate_str(str(k))} => {self.translate(v)}" for k, v in value.items()) + ")"

    def read_env(self, variable: str) -> str:
        return f"ENV[{self.translate_str(variable)}]"
