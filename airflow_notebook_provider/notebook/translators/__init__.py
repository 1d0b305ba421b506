"""A translator per kernel language: parameter values written as literals of that language, never pasted as code.

The language keys and cell conventions are papermill's (``papermill/translators.py``), so a notebook papermill
parameterizes gets the same variables here. Where papermill's text is wrong the translators here differ, and say
so: papermill writes non-ASCII text with Python's ``unicode_escape`` (``ü`` as ``\\xfc``: a Latin-1 byte in R and
Julia, an invalid escape in Scala and C#) and leaves ``$`` live in Julia and PowerShell strings; here every string
round-trips exactly or is refused with the reason.
"""

from __future__ import annotations

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators.base import Translator
from airflow_notebook_provider.notebook.translators.julia import JuliaTranslator
from airflow_notebook_provider.notebook.translators.jvm_dotnet import (
    CSharpTranslator,
    FSharpTranslator,
    PowershellTranslator,
    ScalaTranslator,
)
from airflow_notebook_provider.notebook.translators.matlab import MatlabTranslator, OctaveTranslator
from airflow_notebook_provider.notebook.translators.python import PythonTranslator
from airflow_notebook_provider.notebook.translators.r import RTranslator
from airflow_notebook_provider.notebook.translators.shell import BashTranslator

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


__all__ = [
    "TRANSLATORS",
    "BashTranslator",
    "CSharpTranslator",
    "FSharpTranslator",
    "JuliaTranslator",
    "MatlabTranslator",
    "OctaveTranslator",
    "PowershellTranslator",
    "PythonTranslator",
    "RTranslator",
    "ScalaTranslator",
    "Translator",
    "translator_for",
]
