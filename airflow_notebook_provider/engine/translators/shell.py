"""bash and sh variables."""

from __future__ import annotations

import re
from typing import Any

from airflow_notebook_provider.engine.errors import ParameterError
from airflow_notebook_provider.engine.translators.base import Translator, byte_escape, no_nul, no_surrogates

_BASH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# bash's read-only variables (an assignment fails), and the prompt variables bash_kernel finds the end of every
# command by (assigning one leaves the kernel waiting forever).
_BASH_RESERVED = {"BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID", "PS1", "PS2", "PROMPT_COMMAND"}


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
        no_nul(value, "bash")
        no_surrogates(value, "bash")
        return "$'" + byte_escape(value, "\\'", lambda b: f"\\x{b:02x}") + "'"

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
        if name in _BASH_RESERVED:
            raise ParameterError(f"Parameter name {name!r} is a variable bash keeps read-only or bash_kernel needs for "
                                 "its prompt (assigning it fails or hangs the kernel); rename it.")

    def read_env(self, variable: str) -> str:
        return f'"${{{variable}}}"'
