"""Drop-in replacement for ``apache-airflow-providers-papermill``'s ``PapermillOperator``.

Migrating is an import change::

    # from airflow.providers.papermill.operators.papermill import PapermillOperator
    from airflow_notebook_provider.operators.papermill import PapermillOperator

The arguments keep their names and meaning; the notebook runs on this provider's engine, so the task gains one
output notebook per attempt, the "Output notebook" link, results in XCom and failures recorded in the notebook.
Differences are listed in README.md ("Migrating from the papermill provider").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_notebook_provider.exceptions import NotebookTaskConfigError
from airflow_notebook_provider.operators.notebook import NotebookOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def _location(value: Any) -> str | None:
    """A path/URL string, or the ``url`` of a papermill ``NoteBook`` (any object with one)."""
    if value is None or isinstance(value, str):
        return value
    url = getattr(value, "url", None)
    if isinstance(url, str):
        return url
    raise NotebookTaskConfigError(
        f"Expected a notebook path, URL or papermill NoteBook, got {type(value).__name__}: {value!r}"
    )


class PapermillOperator(NotebookOperator):
    """The papermill provider's operator, running on this provider's engine.

    :param input_nb: Input notebook: path, URL, or a papermill ``NoteBook`` (its ``url`` and ``parameters`` are
        used). Templated.
    :param output_nb: Output notebook, as a path, URL or ``NoteBook``. Templated. Unlike papermill, optional (the
        provider's default layout is used) and never overwritten by a retry (``<name>.attempt-<n>.ipynb``).
    :param parameters: Notebook parameters. Templated.
    :param kernel_name: Kernel to run instead of the notebook's. Templated.
    :param language_name: Language the parameters are written in, as ``language`` (default: the kernel's own).
    :param kernel_conn_id: Remote kernels are not supported; a task setting it fails with a clear error.
    :param log_output: Send the cells' stdout/stderr to the task log (default ``False``, as in papermill).
    :param nbconvert: Accepted and ignored, as the papermill provider itself ignored it.
    :param nbconvert_args: Accepted and ignored, as the papermill provider itself ignored it.

    Every other ``NotebookOperator`` argument (``conn_id``, ``cell_timeout``, ``env``, ``secret_parameters``, ...)
    is accepted too. The return value (XCom ``return_value``) is the output location, a string.
    """

    template_fields: Sequence[str] = (
        "input_nb",
        "output_nb",
        "parameters",
        "kernel_name",
        "language_name",
        "kernel_conn_id",
        "nbconvert",
        "nbconvert_args",
        "env",
        "cwd",
    )

    def __init__(
        self,
        *,
        input_nb: Any = None,
        output_nb: Any = None,
        parameters: Mapping[str, Any] | None = None,
        kernel_name: str | None = None,
        language_name: str | None = None,
        kernel_conn_id: str | None = None,
        log_output: bool = False,
        nbconvert: bool = False,
        nbconvert_args: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(notebook="", parameters=parameters, kernel_name=kernel_name, log_output=log_output, **kwargs)
        self.input_nb = input_nb
        self.output_nb = output_nb
        self.language_name = language_name
        self.kernel_conn_id = kernel_conn_id
        self.nbconvert = nbconvert
        self.nbconvert_args = nbconvert_args
        # papermill's NoteBook inlet carries its own parameters; the operator's win when both are set.
        self._parameters_given = parameters is not None

    def execute(self, context: Context) -> str:
        if not self.input_nb:
            raise NotebookTaskConfigError(f"Task {self.task_id}: `input_nb` is not specified; set it to the notebook to run.")
        if self.kernel_conn_id:
            raise NotebookTaskConfigError(
                f"Task {self.task_id}: `kernel_conn_id` ({self.kernel_conn_id!r}) asks for a remote kernel, which "
                "airflow-notebook-provider does not support. Remove it to run a local kernel, or keep this task on "
                "apache-airflow-providers-papermill."
            )
        if self.nbconvert or self.nbconvert_args:
            self.log.warning("`nbconvert` and `nbconvert_args` are ignored (the papermill provider ignored them too).")
        self.notebook = _location(self.input_nb) or ""
        self.language = self.language or self.language_name
        self.output_notebook = _location(self.output_nb)
        nb_params = getattr(self.input_nb, "parameters", None)
        if not self._parameters_given and isinstance(nb_params, Mapping):
            self.parameters = dict(nb_params)
        return super().execute(context)


__all__ = ["PapermillOperator"]
