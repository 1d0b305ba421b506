"""Load and serialize notebooks: bytes in, a valid nbformat 4.5 ``NotebookNode`` out, and back.

Pure functions, tested without a kernel. The run's record inside the notebook is ``record.py``'s job. A text notebook
(``.py``, ``.md``, ``.R``, ``.jl``, ``.sh``: jupytext) is parsed by ``textformats``; every caller goes through ``load``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings

import nbformat
from nbformat import NotebookNode
from nbformat.v4.nbbase import random_cell_id

from airflow_notebook_provider.notebook import textformats
from airflow_notebook_provider.notebook.errors import NotebookInputError

log = logging.getLogger(__name__)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(data: bytes, source: str) -> NotebookNode:
    """Parse notebook bytes into nbformat 4, with errors that say what is wrong with ``source`` and the fix; a
    ``source`` with a text notebook's extension (``textformats.TEXT_EXTENSIONS``) is read as one."""
    if textformats.is_text_notebook(source) and data.lstrip()[:1] != b"{":  # an .ipynb's JSON under a text name
        return _upgrade(textformats.read(data, source))
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise NotebookInputError(f"{source} is not a notebook: it is not UTF-8 text ({exc}).") from None
    except json.JSONDecodeError as exc:
        raise NotebookInputError(
            f"{source} is not a notebook: it is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}). Open and save it in Jupyter, or check that the path points at the .ipynb file."
        ) from None
    if not isinstance(raw, dict) or "nbformat" not in raw or not ({"cells", "worksheets"} & raw.keys()):
        keys = sorted(raw)[:8] if isinstance(raw, dict) else type(raw).__name__
        raise NotebookInputError(
            f"{source} is JSON but not a Jupyter notebook (it has no 'nbformat' and 'cells'; found {keys}). "
            "Point `notebook` at an .ipynb file."
        )
    major = raw.get("nbformat")
    if not isinstance(major, int) or major < 3:
        raise NotebookInputError(
            f"{source} has nbformat {major!r}, which cannot be run. Upgrade it: "
            "`jupyter nbconvert --to notebook --nbformat 4 --output upgraded.ipynb NOTEBOOK`."
        )
    if major > 4:
        raise NotebookInputError(
            f"{source} has nbformat {major}, newer than this nbformat library ({nbformat.__version__}) reads. "
            "Upgrade the nbformat package where the task runs."
        )
    if major == 3:
        log.warning("%s is nbformat 3; it is upgraded to nbformat 4 for this run (save it as v4 to skip this).", source)
    minor = raw.get("nbformat_minor", 0)
    if major == 4 and isinstance(minor, int) and minor > nbformat.current_nbformat_minor:
        log.warning(
            "%s has nbformat 4.%s, newer than 4.%s known here; unknown fields are kept as they are.",
            source, minor, nbformat.current_nbformat_minor,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.reads(json.dumps(raw), as_version=4)
        except Exception as exc:  # noqa: BLE001 - nbformat raises a mix of ValidationError and KeyError here
            raise NotebookInputError(f"{source} is not a valid notebook: {exc}. Open and save it in Jupyter.") from None
    return _upgrade(nb)


def _upgrade(nb: NotebookNode) -> NotebookNode:
    """Bring a 4.0-4.4 notebook to 4.5, where every cell has an ``id``, as papermill does.

    The engine adds cells (the injected parameters, the error banner), and nbformat gives new cells an ``id``:
    left at 4.4, the output would fail ``nbformat.validate`` and Jupyter would call it invalid.
    """
    if nb.get("nbformat_minor", 0) < 5:
        nb = nbformat.v4.upgrade(nb, from_version=4, from_minor=nb.get("nbformat_minor", 0))
    for cell in nb.cells:
        if not cell.get("id"):
            cell["id"] = random_cell_id()
    return nb


def dumps(nb: NotebookNode) -> bytes:
    """Serialize as Jupyter does (sorted keys, one-space indent, split lines), without a slow schema check."""
    text: str = nbformat.v4.nbjson.writes(nb)
    return (text + "\n").encode("utf-8")
