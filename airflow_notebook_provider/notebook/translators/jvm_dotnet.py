"""Scala, C#, F# and PowerShell literals (kernels of the JVM and .NET)."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators.base import Translator, c_escape, no_surrogates, utf16_escape

_SCALARS = {bool, int, float, str}


class ScalaTranslator(Translator):
    """Scala literals: ``Seq(...)``, ``Map(k -> v)``, ``L`` for longs, ``BigInt("...")`` beyond 64 bits,
    ``val x = ...``."""

    language = "scala"
    long_suffix = "L"
    big_int = 'BigInt("{}")'
    nan, inf = "Double.NaN", "Double.PositiveInfinity"
    neg_inf = "Double.NegativeInfinity"
    comment_prefix = "//"



    def translate_str(self, value: str) -> str:
        return c_escape(value, '"', utf16_escape)

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
    None is refused, as in papermill. A list of one scalar type is ``new [] { ... }`` as papermill writes it; any
    other list (mixed, nested, empty) is ``new object[] { ... }``, since ``new [] { 1, "a" }`` and ``new [] { }``
    do not compile. Integers beyond 64 bits are ``System.Numerics.BigInteger.Parse("...")``."""

    language = "C#"
    long_suffix = "L"
    big_int = 'System.Numerics.BigInteger.Parse("{}")'
    nan, inf = "double.NaN", "double.PositiveInfinity"
    neg_inf = "double.NegativeInfinity"
    comment_prefix = "//"

    def translate_none(self) -> str:
        raise ParameterError("None has no C# literal without a type (papermill refuses it too); pass a value.")



    def translate_str(self, value: str) -> str:
        return c_escape(value, '"', utf16_escape)

    def translate_list(self, value: list[Any]) -> str:
        kinds = {type(v) for v in value}
        typed = len(kinds) == 1 and kinds <= _SCALARS
        return ("new [] { " if typed else "new object[] { ") + ", ".join(self.translate(v) for v in value) + " }"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        kvps = ", ".join(f"{{ {self.translate_str(str(k))} , {self.translate(v)} }}" for k, v in value.items())
        return f"new Dictionary<string,Object>{{ {kvps} }}"

    def assign(self, name: str, literal: str) -> str:
        return f"var {name} = {literal};"

    def read_env(self, variable: str) -> str:
        return f"System.Environment.GetEnvironmentVariable({self.translate_str(variable)})"


class FSharpTranslator(Translator):
    """F# literals (.NET Interactive): ``[ a; b ]``, ``Map.ofList``, ``None``, as papermill writes them. An F# list
    holds one type: integers of mixed widths all get the widest suffix (``[ 1L; 3000000000L ]``), and a list that
    is not of one scalar type is ``[ box a; box b ]``. Integers beyond 64 bits take F#'s bigint suffix ``I``; an
    empty dict is ``Map.empty<string, IComparable>`` (``[  ] |> Map.ofList`` hits the value restriction)."""

    language = "F#"
    long_suffix = "L"
    big_int = "{}I"
    nan, inf = "nan", "infinity"



    def translate_str(self, value: str) -> str:
        return c_escape(value, '"', lambda cp: f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")

    def translate_list(self, value: list[Any]) -> str:
        kinds = {type(v) for v in value}
        if kinds == {int}:
            widest = max(value, key=lambda v: 2 if not -(2**63) <= v < 2**63 else 1 if not -(2**31) <= v < 2**31 else 0)
            suffix = self.translate_int(widest)[len(str(widest)):]
            items = [f"{v}{suffix}" for v in value]
        elif len(kinds) == 1 and kinds <= _SCALARS:
            items = [self.translate(v) for v in value]
        else:
            items = [f"box {self.translate(v)}" for v in value]
        return "[ " + "; ".join(items) + " ]"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        if not value:
            return "Map.empty<string, IComparable>"
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
    ``$`` and backticks stay text (papermill leaves ``$`` live and doubles backslashes, which PowerShell keeps).
    The typographic double quotes U+201C, U+201D and U+201E close a PowerShell string as ``"`` does, so they are
    escaped too; lone surrogates are refused. A one-element list holding a list is ``@(,@(...))`` (``@(@(1, 2))``
    flattens to ``@(1, 2)``); integers beyond 64 bits are ``[bigint]'...'``."""

    language = "powershell"
    big_int = "[bigint]'{}'"
    nan, inf = "[double]::NaN", "[double]::PositiveInfinity"
    neg_inf = "[double]::NegativeInfinity"

    def translate_none(self) -> str:
        return "$Null"

    def translate_bool(self, value: bool) -> str:
        return "$True" if value else "$False"


    def translate_str(self, value: str) -> str:
        no_surrogates(value, "PowerShell")
        simple = {"`": "``", '"': '`"', "$": "`$", "\n": "`n", "\r": "`r", "\t": "`t", "\x00": "`0",
                  "\u201c": "`\u201c", "\u201d": "`\u201d", "\u201e": "`\u201e"}
        body = "".join(simple.get(ch, ch) if ch in simple or ch >= " " else f"`u{{{ord(ch):x}}}" for ch in value)
        return f'"{body}"'

    def translate_list(self, value: list[Any]) -> str:
        if len(value) == 1 and isinstance(value[0], list | tuple):
            return "@(," + self.translate(value[0]) + ")"
        return "@(" + ", ".join(self.translate(v) for v in value) + ")"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "@{" + "\n ".join(f"{self.translate_str(str(k))} = {self.translate(v)}" for k, v in value.items()) + "}"

    def assign(self, name: str, literal: str) -> str:
        return f"${name} = {literal}"

    def read_env(self, variable: str) -> str:
        return f"$env:{variable}"
