"""Scala, C#, F# and PowerShell literals (kernels of the JVM and .NET)."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.engine.errors import ParameterError
from airflow_notebook_provider.engine.translators.base import Translator, c_escape, utf16_escape


class ScalaTranslator(Translator):
    """Scala literals: ``Seq(...)``, ``Map(k -> v)``, ``L`` for longs, ``val x = ...``."""

    language = "scala"
    long_suffix = "L"
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
    None is refused, as in papermill."""

    language = "C#"
    long_suffix = "L"
    nan, inf = "double.NaN", "double.PositiveInfinity"
    neg_inf = "double.NegativeInfinity"
    comment_prefix = "//"

    def translate_none(self) -> str:
        raise ParameterError("None has no C# literal without a type (papermill refuses it too); pass a value.")



    def translate_str(self, value: str) -> str:
        return c_escape(value, '"', utf16_escape)

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
    long_suffix = "L"
    nan, inf = "nan", "infinity"



    def translate_str(self, value: str) -> str:
        return c_escape(value, '"', lambda cp: f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")

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
    nan, inf = "[double]::NaN", "[double]::PositiveInfinity"
    neg_inf = "[double]::NegativeInfinity"

    def translate_none(self) -> str:
        return "$Null"

    def translate_bool(self, value: bool) -> str:
        return "$True" if value else "$False"


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
