"""R literals, exact in any locale."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.engine.errors import ParameterError
from airflow_notebook_provider.engine.translators.base import EXACT_FLOAT_INT, Translator, c_escape, no_nul

_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
               "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


class RTranslator(Translator):
    """R literals. Numbers are doubles (R has no 64-bit integer literal): integers beyond 2**53, which a double
    cannot hold exactly, are refused. Lists are ``list(...)``, dicts named lists (keys become names, i.e.
    strings); an empty dict is an empty *named* list, so it reads back as ``{}``. Text is UTF-8 with ``\\u``
    escapes, so it round-trips in any locale (papermill writes ``ü`` as the Latin-1 byte ``\\xfc``)."""

    language = "R"
    nan, inf = "NaN", "Inf"

    def translate_none(self) -> str:
        return "NULL"

    def translate_bool(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"

    def translate_int(self, value: int) -> str:
        if abs(value) > EXACT_FLOAT_INT:
            raise ParameterError(f"{value} is beyond 2**53: an R number (a double) cannot hold it exactly; pass it "
                                 "as a string.")
        return int.__repr__(value)


    def translate_str(self, value: str) -> str:
        no_nul(value, "R")
        return c_escape(value, '"', lambda cp: f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{{{cp:x}}}")

    def translate_list(self, value: list[Any]) -> str:
        return "list(" + ", ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        if not value:
            return "setNames(list(), character(0))"
        return "list(" + ", ".join(f"{self.translate_str(str(k))} = {self.translate(v)}" for k, v in value.items()) + ")"

    def assign(self, name: str, literal: str) -> str:
        return f"{name} <- {literal}"

    def check_name(self, name: str) -> None:
        if name.startswith("_") or name in _R_RESERVED:
            raise ParameterError(f"Parameter name {name!r} is not a valid R name (no leading '_', no reserved "
                                 "word); rename it.")

    def read_env(self, variable: str) -> str:
        return f"Sys.getenv({self.translate_str(variable)})"
