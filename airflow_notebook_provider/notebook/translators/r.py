"""R literals, exact in any locale."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators.base import (
    EXACT_FLOAT_INT,
    Translator,
    c_escape,
    no_nul,
    no_surrogates,
    string_keys,
)

_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
               "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


def exact_decimal(value: float, text: str) -> bool:
    """True when R reads ``text`` (``value``'s repr) back as exactly ``value``, on any platform.

    R's decimal reader (``R_strtod``) is not correctly rounded: it scales the digits by a power of ten in long
    double, and about one value in 40,000 comes back one unit in the last place off (``-6554.583279405751`` reads
    as ``-6554.5832794057515``). It is exact when the decimal *is* the double, so that nothing is rounded: at most
    15 significant digits and a power of ten up to 10**22 (both exact even in double precision)."""
    mantissa, _, exponent = text.lower().partition("e")
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    digits = (whole + fraction).lstrip("0")
    scale = int(exponent or 0) - len(fraction)
    return len(digits) <= 15 and abs(scale) <= 22 and Fraction(text) == Fraction(value)


class RTranslator(Translator):
    """R literals. Numbers are doubles (R has no 64-bit integer literal): integers beyond 2**53, which a double
    cannot hold exactly, are refused. A float is written in decimal when R reads that decimal back exactly, else
    as a C99 hexadecimal constant (0.1 is ``0x1.999999999999ap-4``): R's decimal reader is not correctly rounded,
    its hex reader is exact. Lists are ``list(...)``, dicts named lists with non-empty string keys (R names are
    strings; papermill would turn None into the name "None"); an empty dict is an empty *named* list, so it reads
    back as ``{}``. Text is UTF-8 with ``\\u`` escapes, so it round-trips in any locale (papermill writes ``ü``
    as the Latin-1 byte ``\\xfc``); NUL and lone surrogates, which R strings cannot hold, are refused."""

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

    def translate_float(self, value: float) -> str:
        if not math.isfinite(value):
            return super().translate_float(value)
        text = float.__repr__(value)
        return text if exact_decimal(value, text) else float.hex(value)

    def translate_str(self, value: str) -> str:
        no_nul(value, "R")
        no_surrogates(value, "R")
        return c_escape(value, '"', lambda cp: f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{{{cp:x}}}")

    def translate_list(self, value: list[Any]) -> str:
        return "list(" + ", ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        if not value:
            return "setNames(list(), character(0))"
        string_keys(value, "an R name (R named lists take non-empty string names only)")
        return "list(" + ", ".join(f"{self.translate_str(k)} = {self.translate(v)}" for k, v in value.items()) + ")"

    def assign(self, name: str, literal: str) -> str:
        return f"{name} <- {literal}"

    def check_name(self, name: str) -> None:
        if name.startswith("_") or name in _R_RESERVED:
            raise ParameterError(f"Parameter name {name!r} is not a valid R name (no leading '_', no reserved "
                                 "word); rename it.")

    def read_env(self, variable: str) -> str:
        return f"Sys.getenv({self.translate_str(variable)})"
