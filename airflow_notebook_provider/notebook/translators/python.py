"""Python literals."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.notebook.translators.base import Translator


class PythonTranslator(Translator):
    """Python literals; ``ast.literal_eval`` of each right-hand side gives the value back exactly."""

    nan, inf, neg_inf = "float('nan')", "float('inf')", "float('-inf')"

    def translate_bool(self, value: bool) -> str:
        return "True" if value else "False"

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
