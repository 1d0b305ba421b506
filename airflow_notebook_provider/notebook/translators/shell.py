"""bash and sh variables.

A parameter is a shell variable assigned in the kernel's interactive bash, so it may not take a name that is not
data to that shell: ``PS0`` and ``PS4`` are expanded, ``$(...)`` included, before each command,
``PROMPT_COMMAND`` is run before each prompt, ``BASH_ENV``/``ENV`` name a file every new shell runs, ``IFS`` and
``PATH`` change what every later command (bash_kernel's own included) means, ``PS1``/``PS2`` are the prompts
bash_kernel waits for. The list is bash's manual (Shell Variables: the Bourne and the Bash variables), the
variables bash's ``variables.c`` reacts to when assigned (``TERM``, ``TZ``, ``TEXTDOMAIN``...), ksh's and dash's for
``sh`` (``FPATH``, ``NLSPATH``), and what bash_kernel 0.10 sets (``PS1``, ``PS2``, ``PROMPT_COMMAND``, ``PAGER``,
``NOTEBOOK_BASH_KERNEL_CAPABILITIES``).
"""

from __future__ import annotations

import re
from typing import Any

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators.base import Translator, byte_escape, no_nul, no_surrogates

_BASH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# -- names a parameter may not take (see the module docstring) --
_FILE = "a file it names would be run by every {shell} started from the notebook"
_LOCALE = "it sets the locale of bash and of every command it runs"
_HISTORY = "it controls bash's command history (what is kept and the file it is written to)"
_READ_ONLY = "bash keeps it read-only (assigning it fails)"
_PROMPT = "bash_kernel finds the end of every command by this prompt: assigning it hangs the kernel"

_WHY: dict[str, str] = {
    "PS0": "its value would be run before each command",
    "PS4": "its value would be run before each command that `set -x` traces",
    "PROMPT_COMMAND": "its value would be run before each prompt (and bash_kernel needs it empty)",
    "PS1": _PROMPT,
    "PS2": _PROMPT,
    "BASH_ENV": _FILE.format(shell="bash"),
    "ENV": _FILE.format(shell="sh (and bash in POSIX mode)"),
    "FPATH": "ksh and zsh load functions (code to run) from the folders it names",
    "IFS": "it changes how bash splits every word, bash_kernel's own commands included",
    "PATH": "it decides which program every command runs",
    "CDPATH": "it changes which folder every `cd` goes to",
    "PAGER": "bash_kernel sets it to `cat` so that no command waits for a key press: another pager hangs the cell",
    "NOTEBOOK_BASH_KERNEL_CAPABILITIES": "bash_kernel sets it to tell programs what the notebook can display",
    "LANG": _LOCALE,
    "TZ": "it sets the time zone of bash and of every command it runs",
    "histchars": _HISTORY,
    **dict.fromkeys(("BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID"), _READ_ONLY),
}
_GENERIC = "bash sets or reads it itself (Shell Variables in `man bash`), so assigning it changes how the shell behaves"

SPECIAL_NAMES: frozenset[str] = frozenset({
    # Bourne shell variables
    "CDPATH", "HOME", "IFS", "MAIL", "MAILPATH", "OPTARG", "OPTIND", "PATH", "PS1", "PS2",
    # Bash variables (bash 5.2's manual; the BASH*, COMP_*, HIST*, LC_*, READLINE_*, EPOCH* families by prefix)
    "_", "BASH", "BASHOPTS", "BASHPID", "CHILD_MAX", "COLUMNS", "COMPREPLY", "COPROC", "DIRSTACK", "EMACS", "ENV",
    "EUID", "EXECIGNORE", "FCEDIT", "FIGNORE", "FUNCNAME", "FUNCNEST", "GLOBIGNORE", "GLOBSORT", "GROUPS",
    "HOSTFILE", "HOSTNAME", "HOSTTYPE", "IGNOREEOF", "INPUTRC", "INSIDE_EMACS", "LANG", "LINENO", "LINES",
    "MACHTYPE", "MAILCHECK", "MAPFILE", "OLDPWD", "OPTERR", "OSTYPE", "PIPESTATUS", "POSIXLY_CORRECT", "PPID",
    "PROMPT_COMMAND", "PROMPT_DIRTRIM", "PS0", "PS3", "PS4", "PWD", "RANDOM", "REPLY", "SECONDS", "SHELL",
    "SHELLOPTS", "SHLVL", "SRANDOM", "TIMEFORMAT", "TMOUT", "TMPDIR", "UID", "auto_resume", "histchars",
    # assigning these makes bash re-read its terminal, locale or clock (variables.c's special_vars)
    "TERM", "TERMCAP", "TERMINFO", "TEXTDOMAIN", "TEXTDOMAINDIR", "TZ", "ignoreeof",
    # sh may be dash or ksh: their own
    "FPATH", "NLSPATH", "HISTEDIT",
    # bash_kernel 0.10 (kernel.py, pexpect's bashrc.sh)
    "PAGER", "NOTEBOOK_BASH_KERNEL_CAPABILITIES",
})
SPECIAL_PREFIXES: tuple[str, ...] = ("BASH", "COMP_", "COPROC", "EPOCH", "HIST", "LC_", "READLINE_")
_PREFIX_WHY = {"HIST": _HISTORY, "LC_": _LOCALE}


def why_special(name: str) -> str | None:
    """Why bash (or bash_kernel) treats ``name`` specially, or None for an ordinary name."""
    if name in _WHY:
        return _WHY[name]
    prefix = next((p for p in SPECIAL_PREFIXES if name.startswith(p)), None)
    if name in SPECIAL_NAMES or prefix is not None:
        return _PREFIX_WHY.get(prefix or "", _GENERIC)
    return None


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
        why = why_special(name)
        if why is not None:
            raise ParameterError(
                f"Parameter name {name!r} cannot be a bash variable: bash treats {name} specially: {why}. Fix: rename "
                f"the parameter; if the notebook really must set {name}, pass the value under another name and set it "
                f'for one command only with `env {name}="$value" command`.'
            )

    def read_env(self, variable: str) -> str:
        return f'"${{{variable}}}"'
