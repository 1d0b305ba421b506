"""Text notebooks (jupytext): a ``.py``, ``.md``, ``.R``, ``.jl`` or ``.sh`` file read as a notebook, and a notebook
written back as text.

Teams keep notebooks as text so that reviews and diffs are readable; papermill refuses them. ``load.load`` calls
``read`` for a location whose extension is one of ``TEXT_EXTENSIONS``, so every reader (the engine, the CLI,
``notebook_params``) takes them alike. The parameters cell is the one tagged ``parameters`` in the text
(``# %% tags=["parameters"]`` in the percent format, ``# + tags=["parameters"]`` in the light one, a
```` ```python tags=["parameters"] ```` block or MyST's ``:tags: [parameters]``). The kernel comes from the text's
jupytext header (``kernelspec``) when it has one, else from the extension (``KERNEL_BY_EXTENSION``); a task's
``kernel_name`` overrides both, as for an ``.ipynb``. The output of a run is always an ``.ipynb``.

jupytext is the optional extra ``[text]``: without it, reading a text notebook fails with the command to install it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from nbformat import NotebookNode

from airflow_notebook_provider.notebook.errors import NotebookConfigError, NotebookInputError

INSTALL_HINT = 'pip install "airflow-notebook-provider[text]"'

KERNEL_BY_EXTENSION: dict[str, tuple[str, str, str]] = {
    # extension -> (kernel name, display name, language): the usual kernel of each language's text notebook
    ".py": ("python3", "Python 3", "python"),
    ".md": ("python3", "Python 3", "python"),
    ".markdown": ("python3", "Python 3", "python"),
    ".myst": ("python3", "Python 3", "python"),
    ".r": ("ir", "R", "R"),
    ".rmd": ("ir", "R", "R"),
    ".jl": ("julia", "Julia", "julia"),
    ".sh": ("bash", "Bash", "bash"),
}
"""A text notebook without a jupytext header runs on this kernel (a header's ``kernelspec`` wins; ``kernel_name``
wins over both). IJulia names its kernels ``julia-1.<minor>``: set ``kernel_name`` to yours."""

TEXT_EXTENSIONS = frozenset(KERNEL_BY_EXTENSION)


def extension(location: str) -> str:
    """The lower-case extension of a path or URL (``s3://b/k/report.R?x`` -> ``.r``), or ``""``."""
    path = urlsplit(location).path if "://" in location else location
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and stem else ""


def is_text_notebook(location: str) -> bool:
    """True when ``location`` names a text notebook (by its extension), which ``read`` parses."""
    return extension(location) in TEXT_EXTENSIONS


def default_kernel(location: str) -> str | None:
    """The kernel a text notebook at ``location`` runs on unless its header says otherwise (``KERNEL_BY_EXTENSION``);
    None for another file. What the engine starts early, while the notebook is fetched."""
    found = KERNEL_BY_EXTENSION.get(extension(location))
    return found[0] if found else None


def _jupytext(source: str) -> ModuleType:
    try:
        import jupytext  # type: ignore[import-untyped]
    except ImportError:
        raise NotebookInputError(
            f"{source} is a text notebook ({extension(source) or 'text'}); reading it needs jupytext, which is not "
            f"installed where this runs. Install the extra: {INSTALL_HINT} (or convert it: `jupytext --to ipynb`)."
        ) from None
    return jupytext


def read(data: bytes, source: str) -> NotebookNode:
    """Parse a text notebook's bytes (jupytext, the format guessed from the text and ``source``'s extension) into
    an nbformat 4 notebook with a ``kernelspec`` (the header's, else the extension's)."""
    jupytext = _jupytext(source)
    ext = extension(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotebookInputError(f"{source} is not a text notebook: it is not UTF-8 text ({exc}).") from None
    try:
        nb: NotebookNode = jupytext.reads(text, fmt=_read_format(ext))
    except Exception as exc:  # noqa: BLE001 - jupytext raises a mix (JupytextFormatError, ValueError, YAML errors)
        raise NotebookInputError(
            f"{source} could not be read as a {ext} text notebook by jupytext ({type(exc).__name__}: {exc}). "
            f"Check its jupytext header, or open it with `jupytext --to ipynb {source}` to see the problem."
        ) from None
    if not isinstance(nb.metadata.get("kernelspec"), dict) or not nb.metadata["kernelspec"].get("name"):
        name, display, language = KERNEL_BY_EXTENSION[ext]
        main = (nb.metadata.get("jupytext") or {}).get("main_language")
        if ext in (".md", ".markdown", ".myst") and isinstance(main, str) and main.lower() not in ("python", ""):
            name, display, language = next(  # a Markdown notebook of R, bash... code blocks
                (v for v in KERNEL_BY_EXTENSION.values() if v[2].lower() == main.lower()), (name, display, language))
        nb.metadata["kernelspec"] = {"name": name, "display_name": display, "language": language}
    return nb


def _read_format(ext: str) -> str:
    """jupytext's format for reading: ``.myst`` is MyST; otherwise the extension alone, so that jupytext guesses the
    format from the text (percent or light ``.py``, jupytext Markdown or MyST ``.md``)."""
    return "md:myst" if ext == ".myst" else ext


def input_format(nb: NotebookNode) -> str | None:
    """The jupytext format of the text notebook ``nb`` was read from (``py:percent``, ``md:myst``...), kept by jupytext
    in ``metadata.jupytext.text_representation``; None for a notebook that was not text."""
    rep = (nb.metadata.get("jupytext") or {}).get("text_representation") or {}
    ext, name = rep.get("extension"), rep.get("format_name")
    if not isinstance(ext, str) or not ext.startswith("."):
        return None
    return f"{ext[1:]}:{name}" if isinstance(name, str) and name else ext[1:]


def writes(nb: NotebookNode, fmt: str) -> tuple[str, str]:
    """(text, file extension) of ``nb`` in jupytext format ``fmt`` (``py:percent``, ``md:myst``, ``R``, ``py``...),
    with only the cells' tags and the notebook's kernelspec (not papermill's per-cell record) in the text.

    ``fmt`` ``input``: the text format the notebook was read from (``input_format``). ``NotebookConfigError`` naming
    the format for one jupytext does not know."""
    if fmt == "input":
        found = input_format(nb)
        if found is None:
            raise NotebookConfigError("The notebook was not read from a text notebook (its metadata has no "
                                      "jupytext.text_representation); name a format instead, e.g. 'py:percent'.")
        fmt = found
    jupytext = _jupytext(f"a notebook written as {fmt}")
    from jupytext.formats import long_form_one_format  # type: ignore[import-untyped]

    nb = NotebookNode({**nb, "metadata": NotebookNode({**nb.metadata, "jupytext": {
        "cell_metadata_filter": "tags,-all", "notebook_metadata_filter": "kernelspec,-all"}})})
    try:
        long: dict[str, Any] = long_form_one_format(fmt)
        text: str = jupytext.writes(nb, fmt=fmt)
    except Exception as exc:  # noqa: BLE001 - jupytext's JupytextFormatError and ValueError for an unknown format
        raise NotebookConfigError(
            f"{fmt!r} is not a jupytext format ({exc}); use e.g. 'py:percent', 'py:light', 'md', 'md:myst', 'R', "
            "'jl', 'sh' or 'ipynb'."
        ) from None
    ext = str(long.get("extension") or "")
    return text, ext


__all__ = ["INSTALL_HINT", "KERNEL_BY_EXTENSION", "TEXT_EXTENSIONS", "default_kernel", "extension", "input_format",
           "is_text_notebook", "read", "writes"]
