"""Secret parameters of one attempt: masked in Airflow's logs, hidden from the operator's attributes, passed to the
kernel apart from the other parameters (``Execution`` sends them as environment variables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import mask_secret

from airflow_notebook_provider.engine import NotebookConfigError
from airflow_notebook_provider.notebook.redact import secret_strings

SECRET_PLACEHOLDER = "***"
"""What a secret parameter's value is replaced by in the operator's ``parameters`` once rendered."""


def hide_secrets(parameters: Mapping[str, Any], names: Sequence[str], kept: dict[str, Any]) -> Mapping[str, Any]:
    """Register each secret value with Airflow's masker, keep it in ``kept`` and return ``parameters`` with ``***``
    in its place (the same object when nothing was hidden): whatever reads the operator's attributes later never sees
    the value. A value of the wrong type (a dict holding the secret) is hidden the same way."""
    params, hidden = dict(parameters), False
    for name in names:
        value = params.get(name)
        if value not in (None, "", SECRET_PLACEHOLDER):
            for text in secret_strings(value):
                mask_secret(text)  # no name: with one, Airflow masks only names it deems sensitive ("password")
            kept[name] = value
            params[name], hidden = SECRET_PLACEHOLDER, True
    return params if hidden else parameters


def split_secrets(
    parameters: Mapping[str, Any], names: Sequence[str], kept: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``parameters`` without the secret ones, and the secret ones with their kept (unmasked) values."""
    rest, secrets = dict(parameters), {}
    for name in names:
        if name not in rest:
            raise NotebookConfigError(
                f"`secret_parameters` names {name!r}, which is not in `parameters` "
                f"({', '.join(map(str, rest)) or 'none'}); add it, e.g. {name!r}: '{{{{ conn.my_conn.password }}}}'."
            )
        value = rest.pop(name)
        secrets[name] = kept.get(name, value)
    return rest, secrets
