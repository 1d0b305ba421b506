"""A translator per kernel language: parameter values written as literals of that language, never pasted as code.

The language keys and cell conventions are papermill's (``papermill/translators.py``), so a notebook papermill
parameterizes gets the same variables here. Where papermill's text is wrong the translators here differ, and say
so: papermill writes non-ASCII text with Python's ``unicode_escape`` (``ü`` as ``\\xfc``: a Latin-1 byte in R and
Julia, an invalid escape in Scala and C#) and leaves ``$`` live in Julia and PowerShell strings; here every string
round-trips exactly or is refused with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from airflow_notebook_provider.engine.errors import ParameterError

_EXACT_FLOAT_INT = 2**53  # integers a double holds exactly


class Translator:
    """Writes normalized values as literals of one kernel language; one method per value type."""

    comment_prefix = "#"
    language = "python"

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
        return int.__repr__(value)

    def translate_float(self, value: float) -> str:
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


def _c_escape(value: str, quote: str, unicode: Callable[[int], str], extra: Mapping[str, str] | None = None) -> str:
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


def _no_nul(value: str, language: str) -> None:
    if "\x00" in value:
        raise ParameterError(f"a string with a NUL character cannot be a {language} string; remove it.")


class PythonTranslator(Translator):
    """Python literals; ``ast.literal_eval`` of each right-hand side gives the value back exactly."""

    def translate_bool(self, value: bool) -> str:
        return "True" if value else "False"

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        # str.__repr__ escapes quotes, backslashes, newlines and lone surrogates, and ignores str subclasses.
        return str.__repr__(value)

    def translate_list(self, value: list[Any]) -> str:
        return "[" + ", ".join(self.translate(v) for v in value) + "]"

    def translate_tuple(self, value: tuple[Any, ...]) -> str:
        if len(value) == 1:
            return "(" + self.translate(value[0]) + ",)"
        return "(" + ", ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "{" + ", ".join(f"{self.translate(k)}: {self.translate(v)}" for k, v in value.items()) + "}"

    def read_env(self, variable: str) -> str:
        return f"__import__('os').environ[{str.__repr__(variable)}]"


_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL", "Inf",
               "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


class RTranslator(Translator):
    """R literals. Numbers are doubles (R has no 64-bit integer literal): integers beyond 2**53, which a double
    cannot hold exactly, are refused. Lists are ``list(...)``, dicts named lists (keys become names, i.e.
    strings); an empty dict is an empty *named* list, so it reads back as ``{}``. Text is UTF-8 with ``\\u``
    escapes, so it round-trips in any locale (papermill writes ``ü`` as the Latin-1 byte ``\\xfc``)."""

    language = "R"

    def translate_none(self) -> str:
        return "NULL"

    def translate_bool(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"

    def translate_int(self, value: int) -> str:
        if abs(value) > _EXACT_FLOAT_INT:
            raise ParameterError(f"{value} is beyond 2**53: an R number (a double) cannot hold it exactly; pass it "
                                 "as a string.")
        return int.__repr__(value)

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        _no_nul(value, "R")
        return _c_escape(value, '"', lambda cp: f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{{{cp:x}}}")

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


class JuliaTranslator(Translator):
    """Julia literals: ``nothing``, ``Dict(k => v)``, ``[a, b]``; ``$`` is escaped (Julia interpolates it)."""

    language = "julia"

    def translate_none(self) -> str:
        return "nothing"

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        return _c_escape(value, '"', lambda cp: f"\\u{{{cp:x}}}", {"$": "\\$"})

    def translate_list(self, value: list[Any]) -> str:
        return "[" + ", ".join(self.translate(v) for v in value) + "]"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "Dict(" + ", ".join(f"{self.translate_str(str(k))} => {self.translate(v)}" for k, v in value.items()) + ")"

    def read_env(self, variable: str) -> str:
        return f"ENV[{self.translate_str(variable)}]"


def _utf16_escape(cp: int) -> str:
    """``\\uXXXX``, as a surrogate pair beyond the BMP (Java, Scala, C#)."""
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    cp -= 0x10000
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


class ScalaTranslator(Translator):
    """Scala literals: ``Seq(...)``, ``Map(k -> v)``, ``L`` for longs, ``val x = ...``."""

    language = "scala"
    comment_prefix = "//"

    def translate_int(self, value: int) -> str:
        return f"{value}L" if not -(2**31) <= value < 2**31 else str(value)

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "Double.NaN"
        if math.isinf(value):
            return "Double.PositiveInfinity" if value > 0 else "Double.NegativeInfinity"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        return _c_escape(value, '"', _utf16_escape)

    def translate_list(self, value: list[Any]) -> str:
        return "Seq(" + ", ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "Map(" + ", ".join(f"{self.translate_str(str(k))} -> {self.translate(v)}" for k, v in value.items()) + ")"

    def assign(self, name: str, literal: str) -> str:
        return f"val {name} = {literal}"

    def read_env(self, variable: str) -> str:
        return f"sys.env({self.translate_str(variable)})"


class CSharpTranslator(Translator):
    """C# literals (.NET Interactive): arrays, ``Dictionary<string,Object>``; ``null`` has no type to infer, so
    None is refused, as in papermill."""

    language = "C#"
    comment_prefix = "//"

    def translate_none(self) -> str:
        raise ParameterError("None has no C# literal without a type (papermill refuses it too); pass a value.")

    def translate_int(self, value: int) -> str:
        return f"{value}L" if not -(2**31) <= value < 2**31 else str(value)

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "double.NaN"
        if math.isinf(value):
            return "double.PositiveInfinity" if value > 0 else "double.NegativeInfinity"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        return _c_escape(value, '"', _utf16_escape)

    def translate_list(self, value: list[Any]) -> str:
        return "new [] { " + ", ".join(self.translate(v) for v in value) + " }"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        kvps = ", ".join(f"{{ {self.translate_str(str(k))} , {self.translate(v)} }}" for k, v in value.items())
        return f"new Dictionary<string,Object>{{ {kvps} }}"

    def assign(self, name: str, literal: str) -> str:
        return f"var {name} = {literal};"

    def read_env(self, variable: str) -> str:
        return f"System.Environment.GetEnvironmentVariable({self.translate_str(variable)})"


class FSharpTranslator(Translator):
    """F# literals (.NET Interactive): ``[ a; b ]``, ``Map.ofList``, ``None``."""

    language = "F#"

    def translate_int(self, value: int) -> str:
        return f"{value}L" if not -(2**31) <= value < 2**31 else str(value)

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "infinity" if value > 0 else "-infinity"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        return _c_escape(value, '"', lambda cp: f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")

    def translate_list(self, value: list[Any]) -> str:
        return "[ " + "; ".join(self.translate(v) for v in value) + " ]"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        items = "; ".join(f"({self.translate_str(str(k))}, {self.translate(v)} :> IComparable)" for k, v in value.items())
        return f"[ {items} ] |> Map.ofList"

    def comment(self, text: str) -> str:
        return f"(* {text} *)"

    def assign(self, name: str, literal: str) -> str:
        return f"let {name} = {literal}"

    def read_env(self, variable: str) -> str:
        return f"System.Environment.GetEnvironmentVariable({self.translate_str(variable)})"


class PowershellTranslator(Translator):
    """PowerShell literals: ``@(...)``, ``@{k = v}``, ``$True``; strings double-quoted with backtick escapes, so
    ``$`` and backticks stay text (papermill leaves ``$`` live and doubles backslashes, which PowerShell keeps)."""

    language = "powershell"

    def translate_none(self) -> str:
        return "$Null"

    def translate_bool(self, value: bool) -> str:
        return "$True" if value else "$False"

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "[double]::NaN"
        if math.isinf(value):
            return "[double]::PositiveInfinity" if value > 0 else "[double]::NegativeInfinity"
        return float.__repr__(value)

    def translate_str(self, value: str) -> str:
        simple = {"`": "``", '"': '`"', "$": "`$", "\n": "`n", "\r": "`r", "\t": "`t", "\x00": "`0"}
        body = "".join(simple.get(ch, ch) if ch in simple or ch >= " " else f"`u{{{ord(ch):x}}}" for ch in value)
        return f'"{body}"'

    def translate_list(self, value: list[Any]) -> str:
        return "@(" + ", ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "@{" + "\n ".join(f"{self.translate_str(str(k))} = {self.translate(v)}" for k, v in value.items()) + "}"

    def assign(self, name: str, literal: str) -> str:
        return f"${name} = {literal}"

    def read_env(self, variable: str) -> str:
        return f"$env:{variable}"


class MatlabTranslator(Translator):
    """MATLAB literals, as papermill writes them: ``"..."`` strings (``""`` for a quote), cell arrays for lists,
    ``containers.Map`` for dicts, ``NaN`` for None. MATLAB strings take no backslash escapes, so text with
    control characters or outside printable ASCII is refused rather than silently changed."""

    language = "matlab"
    comment_prefix = "%"

    def translate_none(self) -> str:
        return "NaN"

    def translate_float(self, value: float) -> str:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return float.__repr__(value)

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
        _no_nul(value, "Octave")
        out = []
        for ch in value:
            if ch in '\\"':
                out.append("\\" + ch)
            elif " " <= ch <= "~":
                out.append(ch)
            else:
                out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
        return '"' + "".join(out) + '"'


_BASH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class BashTranslator(Translator):
    """bash variables: scalars, and arrays of scalars (``(a b)``); bash has no nested lists or dicts, which are
    refused. Every value is a string to bash: True/False become ``true``/``false``, None the empty string. Strings
    are ``$'...'`` with each character outside printable ASCII as its UTF-8 bytes (``\\xHH``): bash_kernel types
    code into an interactive bash, where a raw TAB is eaten by completion and U+2028 splits a line."""

    language = "bash"

    def translate_none(self) -> str:
        return "''"

    def translate_int(self, value: int) -> str:
        return self.translate_str(str(value))

    def translate_float(self, value: float) -> str:
        return self.translate_str(float.__repr__(value))

    def translate_bool(self, value: bool) -> str:
        return "true" if value else "false"

    def translate_str(self, value: str) -> str:
        _no_nul(value, "bash")
        out = []
        for ch in value:
            if ch in "\\'":
                out.append("\\" + ch)
            elif " " <= ch <= "~":
                out.append(ch)
            else:
                out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
        return "$'" + "".join(out) + "'"

    def translate_list(self, value: list[Any]) -> str:
        for v in value:
            if isinstance(v, list | tuple | dict):
                raise ParameterError("bash arrays hold scalars only: a nested list or dict cannot be a bash value; "
                                     "pass it as a JSON string and parse it with jq.")
        return "(" + " ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        raise ParameterError("bash has no dict value (an associative array needs `declare -A`); pass it as a JSON "
                             "string and parse it with jq.")

    def assign(self, name: str, literal: str) -> str:
        # unset first: assigning a scalar to a name the parameters cell made an array keeps the other elements.
        return f"unset -v {name}; {name}={literal}"

    def check_name(self, name: str) -> None:
        if not _BASH_NAME.fullmatch(name):
            raise ParameterError(f"Parameter name {name!r} is not a valid bash variable name; rename it.")

    def read_env(self, variable: str) -> str:
        return f'"${{{variable}}}"'


_PYTHON = PythonTranslator()
TRANSLATORS: dict[str, Translator] = {
    "python": _PYTHON, "pysparkkernel": _PYTHON,
    "r": RTranslator(), "sparkrkernel": RTranslator(),
    "julia": JuliaTranslator(),
    "scala": ScalaTranslator(), "sparkkernel": ScalaTranslator(),
    "matlab": MatlabTranslator(), "octave": OctaveTranslator(),
    ".net-csharp": CSharpTranslator(), "c#": CSharpTranslator(), "csharp": CSharpTranslator(),
    ".net-fsharp": FSharpTranslator(), "f#": FSharpTranslator(), "fsharp": FSharpTranslator(),
    ".net-powershell": PowershellTranslator(), "powershell": PowershellTranslator(),
    "bash": BashTranslator(), "sh": BashTranslator(),
}


def translator_for(language: str) -> Translator:
    try:
        return TRANSLATORS[language.lower()]
    except KeyError:
        known = ", ".join(sorted(TRANSLATORS))
        raise ParameterError(
            f"No parameter translator for kernel language {language!r} (known: {known}). Set `language=` to one of "
            "them (e.g. language='python' for a Python-compatible kernel), or run without parameters."
        ) from None


__all__ = ["TRANSLATORS", "Translator", "translator_for"]
