"""Secret values out of what a run writes, raises and logs: a cell that prints a secret parameter, or puts it in an
exception.

The injected cell never holds a secret (it reads an environment variable); but the notebook's own code may print
one, or raise an error that names it. Every write of the output notebook replaces each secret value by ``***`` (in
its JSON-escaped forms), and when the run ends the notebook itself is cleaned the same way, so that reports and XCom
records built from it are too. The operator cleans the same way what leaves the task: its exception (arguments,
attributes, notes and the whole ``__cause__``/``__context__`` chain, which failure callbacks and log formatters
read) and its log lines. Values shorter than ``MIN_LENGTH`` are left alone, as Airflow's secrets masker does:
hiding every "ab" would garble the notebook and protect nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from nbformat import NotebookNode

MIN_LENGTH = 5
PLACEHOLDER = "***"
# Exception attributes set from ``args`` at construction and kept in C slots, not in ``__dict__`` (OSError's
# ``strerror`` and ``filename``, SyntaxError's ``msg`` and ``text``, UnicodeError's ``reason``).
_SLOT_ATTRIBUTES = ("strerror", "filename", "filename2", "msg", "text", "reason")


def secret_strings(value: Any) -> list[str]:
    """The texts a secret value can show up as: itself, the strings inside a dict or list given where a string was
    expected, and the ``str()`` of a number."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes | bytearray):
        return [bytes(value).decode(errors="replace")]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in secret_strings(item)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for item in value for s in secret_strings(item)]
    return [str(value)]


class RedactedError(Exception):
    """Stands in for an exception whose text still showed a secret after cleaning (its ``__str__`` builds the text
    from state that cannot be reached): its type's name and its cleaned text, nothing else of it."""


class Redactor:
    """Replaces a run's secret values by ``***``."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}, key=len, reverse=True)
        forms: list[bytes] = []
        texts: list[str] = []
        for value in self.values:
            # As written (a message), JSON-escaped (a notebook, a JSON log line) and repr-escaped (``{value!r}``).
            for text in (value, *(json.dumps(value, ensure_ascii=a)[1:-1] for a in (False, True)), repr(value)[1:-1]):
                if text not in texts:
                    texts.append(text)
            for ascii_only in (False, True):
                escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1].encode()
                if escaped not in forms:
                    forms.append(escaped)
        self._forms = forms
        self._texts = sorted(texts, key=len, reverse=True)

    @classmethod
    def of(cls, values: Iterable[Any]) -> Redactor:
        """A redactor for secret values of any type (see ``secret_strings``)."""
        return cls(s for value in values for s in secret_strings(value))

    def __bool__(self) -> bool:
        return bool(self.values)

    def bytes(self, data: bytes) -> bytes:
        for form in self._forms:
            data = data.replace(form, PLACEHOLDER.encode())
        return data

    def text(self, text: str) -> str:
        for form in self._texts:
            text = text.replace(form, PLACEHOLDER)
        return text

    def shows(self, text: str) -> bool:
        return any(form in text for form in self._texts)

    def notebook(self, nb: NotebookNode) -> None:
        """Clean every output of ``nb`` in place (streams, results, errors and their tracebacks)."""
        for cell in nb.cells:
            for output in cell.get("outputs", []) or []:
                _clean(output, self)

    def value(self, value: Any) -> Any:
        """``value`` with its strings cleaned, through lists, tuples, dicts and dataclasses; the same object when
        nothing in it changed (so that a caller knows whether to write it back)."""
        if isinstance(value, str):
            return self.text(value) if self.shows(value) else value
        if isinstance(value, list | tuple):
            items = [self.value(item) for item in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else (type(value)(*items) if hasattr(value, "_fields")
                                                          else tuple(items))
        if isinstance(value, dict):
            cleaned = {k: self.value(v) for k, v in value.items()}
            if all(cleaned[k] is v for k, v in value.items()):
                return value
            try:
                return type(value)(cleaned)
            except TypeError:  # a dict subclass built otherwise (defaultdict): a plain dict will do
                return cleaned
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {f.name: self.value(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
            changes = {k: v for k, v in changes.items() if v is not getattr(value, k)}
            return dataclasses.replace(value, **changes) if changes else value
        return value

    def exception(self, exc: BaseException) -> BaseException:
        """Clean ``exc`` in place: its args, attributes, notes, the exceptions of a group, and its ``__cause__`` and
        ``__context__`` (suppressed or not: Sentry and others walk it anyway). Returns ``exc``, or a
        ``RedactedError`` to raise instead when its text still shows a secret."""
        return self._exception(exc, set())

    def _exception(self, exc: BaseException, seen: set[int]) -> BaseException:
        if id(exc) in seen:
            return exc
        seen.add(id(exc))
        _set(exc, "args", self.value(exc.args), exc.args)
        for name, value in list(getattr(exc, "__dict__", {}).items()):
            _set(exc, name, self.value(value), value)
        for name in _SLOT_ATTRIBUTES:
            value = getattr(exc, name, None)
            if isinstance(value, str):
                _set(exc, name, self.value(value), value)
        for inner in getattr(exc, "exceptions", None) or ():  # an ExceptionGroup's: read-only, cleaned in place
            if isinstance(inner, BaseException):
                self._exception(inner, seen)
        suppress = exc.__suppress_context__
        for link in ("__cause__", "__context__"):
            inner = getattr(exc, link)
            if inner is not None:
                clean = self._exception(inner, seen)
                if clean is not inner:
                    setattr(exc, link, clean)
        exc.__suppress_context__ = suppress  # setting __cause__ sets it
        if not self.shows(_describe(exc)):
            return exc
        stand_in = RedactedError(f"{type(exc).__name__}: {self.text(_describe(exc))}")
        stand_in.__cause__, stand_in.__context__ = exc.__cause__, exc.__context__
        stand_in.__suppress_context__ = suppress
        return stand_in.with_traceback(exc.__traceback__)


def _set(exc: BaseException, name: str, clean: Any, value: Any) -> None:
    if clean is not value:
        try:
            setattr(exc, name, clean)
        except (AttributeError, TypeError):  # read-only: the text check in _exception catches what stays
            pass


def _describe(exc: BaseException) -> str:
    """What formatters print of an exception: its text, its repr and its notes."""
    parts = []
    for render in (str, repr):
        try:
            parts.append(render(exc))
        except Exception:  # noqa: BLE001 - a broken __str__ shows nothing, secret or not
            parts.append("")
    parts.extend(str(note) for note in getattr(exc, "__notes__", None) or ())
    return "\n".join(parts)


class RedactingFilter(logging.Filter):
    """Cleans each record a logger emits (its message, its exception and the text cached for it)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that does not format is left to the handler to report
            return True
        if self.redactor.shows(text):
            record.msg, record.args = self.redactor.text(text), None
        if record.exc_info and record.exc_info[1] is not None:
            self.redactor.exception(record.exc_info[1])
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        return True


@contextmanager
def filtering(filterers: Iterable[logging.Filterer], redactor: Redactor) -> Iterator[None]:
    """Clean what ``filterers`` (handlers, or loggers: a logger's filters see only its own records) emit, and the
    warnings shown (Airflow's task logging shows them through ``warnings.showwarning``), while the block runs."""
    flt = RedactingFilter(redactor)
    filterers = list(filterers)
    for filterer in filterers:
        filterer.addFilter(flt)
    shown = warnings.showwarning

    def showwarning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        if redactor.shows(str(message)):
            message = type(message)(redactor.text(str(message))) if isinstance(message, Warning) else \
                redactor.text(str(message))
        shown(message, *args, **kwargs)

    warnings.showwarning = showwarning
    try:
        yield
    finally:
        if warnings.showwarning is showwarning:  # unless someone replaced it since
            warnings.showwarning = shown
        for filterer in filterers:
            filterer.removeFilter(flt)


class RedactingLog:
    """Wraps a logger (``logging`` or structlog): each line is formatted, then cleaned by ``redactor`` and by
    ``also`` (Airflow's secrets masker, for the secrets it knows), before it is logged."""

    _LEVELS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal"})

    def __init__(self, log: Any, redactor: Redactor, also: Callable[[str], Any] | None = None) -> None:
        self._log = log
        self._redactor = redactor
        self._also = also

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._log, name)
        if name not in self._LEVELS:
            return method

        def call(msg: object, *args: Any, **kwargs: Any) -> Any:
            try:
                text = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                text = " ".join(map(str, (msg, *args)))
            text = self._redactor.text(text)
            if self._also is not None:
                text = str(self._also(text))
            exc = kwargs.get("exc_info")
            if isinstance(exc, BaseException):
                self._redactor.exception(exc)
            elif exc or name == "exception":
                if (current := sys.exc_info()[1]) is not None:
                    self._redactor.exception(current)
            return method("%s", text, **kwargs)

        return call


def _clean(node: Any, redactor: Redactor) -> Any:
    if isinstance(node, str):
        return redactor.text(node)
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _clean(item, redactor)
        return node
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _clean(node[key], redactor)
        return node
    return node
