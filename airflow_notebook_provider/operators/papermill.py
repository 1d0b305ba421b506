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
from typing import TYPE_CHECKING, Any, ClassVar

import attr
from airflow.providers.common.compat.lineage.entities import File

from airflow_notebook_provider.exceptions import NotebookTaskConfigError
from airflow_notebook_provider.hooks.kernel import KERNEL_CONN_TYPE
from airflow_notebook_provider.operators.notebook import NotebookOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


@attr.s(auto_attribs=True)
class NoteBook(File):
    """A notebook location with parameters, as the papermill provider's ``NoteBook``: what the task returns, so
    that a downstream task reads ``output.url`` as it did (papermill's example DAGs do)."""

    template_fields: ClassVar[tuple[str, ...]] = ("parameters", *File.template_fields)
    type_hint: str | None = "jupyter_notebook"
    parameters: dict | None = {}


def _allow_in_xcom() -> None:
    """Let a downstream task deserialize the returned ``NoteBook`` (Airflow allows only ``airflow.*`` classes by
    default): the DAG file imports this module in every task process, before any XCom is read."""
    try:
        from airflow.sdk.serde import allow_class
    except ImportError:  # older Airflow 3: add the class to [core] allowed_deserialization_classes
        return
    allow_class(NoteBook)


_allow_in_xcom()


class InputNotebookMissing(NotebookTaskConfigError, ValueError):
    """``input_nb`` is empty after templating: a ``ValueError``, as the papermill provider raises."""


class OutputNotebookMissing(NotebookTaskConfigError, ValueError):
    """``output_nb`` is empty and no task instance is there to name the default location (``execute`` called
    outside Airflow): a ``ValueError``, as the papermill provider raises."""


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
    :param output_nb: Output notebook, as a path, URL or ``NoteBook``. Templated. Unlike papermill, optional under
        Airflow (the provider's default layout, named after the task instance, is used) and never overwritten by a
        retry (``<name>.attempt-<n>.ipynb``).
    :param parameters: Notebook parameters. Templated.
    :param kernel_name: Kernel to run instead of the notebook's. Templated.
    :param language_name: Language the parameters are written in, as ``language`` (default: the kernel's own).
    :param kernel_conn_id: A kernel that runs elsewhere: the papermill provider's ``jupyter_kernel`` connection (a
        running kernel over ZMQ, attached to and never shut down) or a ``jupyter_gateway`` connection. Templated.
        A connection without a type is taken as ``jupyter_kernel``, as the papermill provider reads any connection.
    :param log_output: Send the cells' stdout/stderr to the task log (default ``False``, as in papermill).
    :param nbconvert: Accepted and ignored, as the papermill provider itself ignored it.
    :param nbconvert_args: Accepted and ignored, as the papermill provider itself ignored it.

    Every other ``NotebookOperator`` argument (``conn_id``, ``cell_timeout``, ``env``, ``secret_parameters``, ...)
    is accepted too. The return value (XCom ``return_value``) is a ``NoteBook`` whose ``url`` is this attempt's
    output location and whose ``parameters`` are the ones injected, as the papermill provider returns.
    """

    untyped_kernel_conn_type = KERNEL_CONN_TYPE  # the papermill provider's KernelHook reads any connection as a kernel
    template_fields: Sequence[str] = (
        "input_nb",
        "output_nb",
        "parameters",
        "conn_id",
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
        super().__init__(notebook="", parameters=parameters, kernel_name=kernel_name, kernel_conn_id=kernel_conn_id,
                         log_output=log_output, **kwargs)
        self.input_nb = input_nb
        self.output_nb = output_nb
        self.language_name = language_name
        self.nbconvert = nbconvert
        self.nbconvert_args = nbconvert_args
        # papermill's NoteBook inlet carries its own parameters; the operator's win when both are set.
        self._parameters_given = parameters is not None

    def execute(self, context: Context) -> NoteBook:  # type: ignore[override]
        # The arguments first, as the papermill provider checks them, before anything reads the context.
        if not self.input_nb:
            raise InputNotebookMissing(
                f"Input notebook is not specified (task {self.task_id}): set `input_nb` to the notebook to run."
            )
        if not self.output_nb and not self.output_notebook and context.get("ti") is None:
            raise OutputNotebookMissing(
                f"Output notebook is not specified (task {self.task_id}) and no task instance is there to name the "
                "default location: set `output_nb`, or run the task through Airflow."
            )
        if self.nbconvert or self.nbconvert_args:
            self.log.warning("`nbconvert` and `nbconvert_args` are ignored (the papermill provider ignored them too).")
        self.notebook = _location(self.input_nb) or ""
        self.language = self.language or self.language_name
        self.output_notebook = _location(self.output_nb)
        self._take_inlet_parameters()
        output = super().execute(context)
        params = dict(self.parameters) if isinstance(self.parameters, Mapping) else {}
        return NoteBook(url=output, parameters={k: v for k, v in params.items() if k not in self.secret_parameters})

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any, jinja_env: Any,
                                   seen_oids: Any) -> None:
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self:  # before Airflow stores the rendered fields: a secret in the inlet's parameters is hidden
            self._take_inlet_parameters()

    def _take_inlet_parameters(self) -> None:
        """papermill's ``NoteBook`` inlet carries its own parameters; the operator's win when both are set. Secret
        ones are hidden as in ``parameters``, and the inlet this task holds is replaced by one showing ``***``."""
        nb_params = getattr(self.input_nb, "parameters", None)
        if self._parameters_given or not isinstance(nb_params, Mapping):
            return
        self.parameters = dict(nb_params)
        self._mask_secrets()
        if self.parameters != dict(nb_params) and attr.has(type(self.input_nb)):
            self.input_nb = attr.evolve(self.input_nb, parameters=dict(self.parameters))


__all__ = ["InputNotebookMissing", "NoteBook", "OutputNotebookMissing", "PapermillOperator"]
