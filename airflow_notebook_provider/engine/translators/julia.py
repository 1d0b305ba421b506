"""Julia literals."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.engine.translators.base import Translator, c_escape


class JuliaTranslator(Translator):
    """Julia literals: ``nothing``, ``Dict(k => v)``, ``[a, b]``; ``$`` is escaped (Julia interpolates it)."""

    language = "julia"
    nan, inf = "NaN", "Inf"

    def translate_none(self) -> str:
        return "nothing"


    def translate_str(self, value: str) -> str:
        return c_escape(value, '"', lambda cp: f"\\u{{{cp:x}}}", {"$": "\\$"})

    def translate_list(self, value: list[Any]) -> str:
        return "[" + ", ".join(self.translate(v) for v in value) + "]"

    def translate_dict(self, value: dict[Any, Any]) -> str:
        return "Dict(" + ", ".join(f"{self.translate_str(str(k))} => {self.translate(v)}" for k, v in value.items()) + ")"

    def read_env(self, variable: str) -> str:
        return f"ENV[{self.translate_str(variable)}]"
