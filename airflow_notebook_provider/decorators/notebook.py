"""``@task.notebook``: a TaskFlow function that returns the parameters of a notebook task.

Registered through the provider's ``task-decorators``, as the standard provider registers ``@task.bash``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    DecoratedOperator,
    TaskDecorator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_notebook_provider.exceptions import NotebookTaskConfigError
from airflow_notebook_provider.operators.notebook import NotebookOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _NotebookDecoratedOperator(DecoratedOperator, NotebookOperator):
    """Calls the function at run time and runs the notebook with the dict it returns as ``parameters``.

    The returned dict is merged over any ``parameters=`` given to the decorator. It is not rendered as a template
    again: the function already receives the context (``ds``, ``ti``, ...) as arguments.
    """

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, *NotebookOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **NotebookOperator.template_fields_renderers,
    }
    custom_operator_name: str = "@task.notebook"
    # The parameters exist only after the function ran: store the rendered fields again after execution.
    overwrite_rtif_after_execution: bool = True

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        returned = self.python_callable(*self.op_args, **kwargs)
        if returned is None:
            returned = {}
        if not isinstance(returned, Mapping):
            raise NotebookTaskConfigError(
                f"Task {self.task_id}: the @task.notebook function {self.python_callable.__name__}() must return a dict "
                f"of notebook parameters (or None), got {type(returned).__name__}: {returned!r}"
            )
        base = self.parameters if isinstance(self.parameters, Mapping) else {}
        self.parameters = {**base, **returned}
        self._mask_secrets()
        return NotebookOperator.execute(self, context)


def notebook_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.notebook(notebook=..., **NotebookOperator arguments)``: the function returns the parameters dict.

    The task's return value is the output notebook location (never unrolled, whatever the function's annotation).
    """
    kwargs["multiple_outputs"] = False
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_NotebookDecoratedOperator,
        **kwargs,
    )
