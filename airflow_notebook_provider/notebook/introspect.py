"""What a notebook's ``parameters`` cell declares: names, defaults, types and help text, read without running it.

Compatible with papermill's ``--help-notebook`` (``PythonTranslator.inspect``): a parameter is an assignment in
the cell tagged ``parameters``; its type is the annotation or ``# type:`` comment, as papermill reads it, and
otherwise (where papermill says ``None``) the type of the literal default; the comment after the value is its
help. Python and R are read; other languages are reported as not introspectable rather than guessed.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from nbformat import NotebookNode

from airflow_notebook_provider.notebook.parameters import PARAMETERS_TAG, find_tagged

_NO_VALUE = object()
# Written so that a failing match cannot backtrack through a long line: ``(.*?)\s*`` or ``\d+\.?\d*`` try every split
# of it (minutes for a line of 100,000 characters shaped against them).
_R_ASSIGN = re.compile(r"^\s*([A-Za-z.][A-Za-z0-9._]*)\s*(?:<-|=)\s*([^#]*)(?:#\s*(.*))?$")
_R_STRING = re.compile(r'^"((?:[^"\\]|\\.)*)"$|^\'((?:[^\'\\]|\\.)*)\'$')
_R_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?L?$")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")


class NotIntrospectable(Exception):
    """The language's parameters cannot be read without running the notebook; the message says so."""


@dataclass(frozen=True)
class DeclaredParameter:
    name: str
    default_source: str
    """The default as written in the cell."""
    default: Any
    """The default as a value, when it is a literal (else None: see ``has_value``)."""
    has_value: bool
    inferred_type: str
    """The annotation or ``# type:`` comment (papermill's inference), else the literal's type, else ``None``."""
    help: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default_source,
                "value": self.default if self.has_value else None, "has_value": self.has_value,
                "type": self.inferred_type, "help": self.help}


def declared_parameters(nb: NotebookNode, language: str) -> list[DeclaredParameter] | None:
    """The parameters the notebook's ``parameters`` cell declares; None when it has no such cell.

    Raises ``NotIntrospectable`` for a language whose syntax is not read here, and ``UnreadableParametersCell``
    (a kind of it) for a cell this language's parser cannot read: nothing is guessed from such a cell.
    """
    index = find_tagged(nb, PARAMETERS_TAG)
    if index < 0:
        return None
    source = nb.cells[index].source
    lang = language.lower()
    if lang == "python":
        return _python(source, f"the parameters cell (cell {index + 1})")
    if lang in ("r", "sparkrkernel"):
        return _r(source)
    raise NotIntrospectable(f"the parameters of {language} notebooks cannot be read without running them "
                            "(Python and R can)")


class UnreadableParametersCell(NotIntrospectable):
    """The ``parameters`` cell is not Python the parser can read (a syntax error, or nesting deeper than the parser
    goes): its declared parameters are unknown; the message names the cell and the fix."""


def _python(source: str, cell: str) -> list[DeclaredParameter]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UnreadableParametersCell(f"{cell} is not valid Python (line {exc.lineno}: {exc.msg}); fix the cell so "
                                       "that it runs, then list its parameters again") from None
    except UnicodeEncodeError as exc:  # a lone surrogate: the notebook's JSON held a broken "\\udXXX" escape
        raise UnreadableParametersCell(f"{cell} holds {exc.object[exc.start]!r}, half of a UTF-16 pair, which is not "
                                       "text Python can read; remove it from the cell") from None
    except (RecursionError, MemoryError):  # Python 3.11's parser says MemoryError when its stack is full
        raise UnreadableParametersCell(
            f"{cell} is nested too deeply for Python's parser (thousands of operators or brackets in one "
            "expression); simplify the cell: write each default as a plain literal, e.g. `x = -1` or `x = [1, 2]`"
        ) from None
    comments: dict[int, str] = {}
    if "#" in source:  # tokenizing is the slow part of a long cell; only comments need it
        try:
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                if tok.type == tokenize.COMMENT:
                    comments[tok.start[0]] = tok.string.lstrip("#").strip()
        except (tokenize.TokenError, IndentationError, SyntaxError):
            pass
    lines = _LINE.findall(source)
    out: list[DeclaredParameter] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value, annotation = node.targets[0].id, node.value, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
            annotation = _segment(lines, node.annotation)
        else:
            continue
        text = _segment(lines, value)
        comment = comments.get(node.end_lineno or node.lineno, "")
        type_comment = ""
        if comment.startswith("type:"):
            type_comment, _, comment = comment[len("type:"):].strip().partition(" ")
            comment = comment.strip()
        try:
            literal, has_value = ast.literal_eval(value), True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            literal, has_value = None, False
        declared = (annotation or type_comment or "").strip("'\"")
        inferred = declared or (type(literal).__name__ if has_value else "None")
        out.append(DeclaredParameter(name, text, literal, has_value, inferred, comment))
    return out


def _segment(lines: list[str], node: ast.expr) -> str:
    """The source of ``node``, as ``ast.get_source_segment`` gives it, in linear time: Python 3.11's splits the
    source a character at a time, for every node (minutes for a cell holding a multi-megabyte string)."""
    start, end, col, end_col = node.lineno, node.end_lineno, node.col_offset, node.end_col_offset
    if end is None or end_col is None or end > len(lines):
        return ""
    if start == end:
        return lines[start - 1].encode()[col:end_col].decode()
    first = lines[start - 1].encode()[col:].decode()
    last = lines[end - 1].encode()[:end_col].decode()
    return first + "".join(lines[start:end - 1]) + last


def _r(source: str) -> list[DeclaredParameter]:
    out: list[DeclaredParameter] = []
    for line in source.splitlines():
        match = _R_ASSIGN.match(line)
        if not match:
            continue
        name, text, comment = match.group(1), match.group(2).rstrip(), (match.group(3) or "").strip()
        value, kind = _r_literal(text)
        out.append(DeclaredParameter(name, text, None if value is _NO_VALUE else value, value is not _NO_VALUE,
                                     kind, comment))
    return out


def _r_literal(text: str) -> tuple[Any, str]:
    if text in ("TRUE", "FALSE"):
        return text == "TRUE", "logical"
    if text == "NULL":
        return None, "NULL"
    if _R_NUMBER.match(text):
        number = text.rstrip("L")
        value: Any = int(number) if text.endswith("L") or re.fullmatch(r"-?\d+", number) else float(number)
        return value, "integer" if text.endswith("L") else "numeric"
    string = _R_STRING.match(text)
    if string:
        body = string.group(1) if string.group(1) is not None else string.group(2)
        return re.sub(r"\\(.)", r"\1", body), "character"
    return _NO_VALUE, "None"
