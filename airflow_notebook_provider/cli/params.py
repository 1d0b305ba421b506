"""``params``: the parameters a notebook declares (name, default, type, help), read without running it."""

from __future__ import annotations

import argparse
import json

from airflow_notebook_provider.cli import storage
from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.cli.untrusted import echo
from airflow_notebook_provider.engine import load
from airflow_notebook_provider.notebook.introspect import NotIntrospectable, declared_parameters


def cmd_params(args: argparse.Namespace) -> int:
    nb = load(storage.read(args.notebook, args.conn_id), args.notebook)
    meta = nb.metadata
    language = (args.language or meta.get("kernelspec", {}).get("language")
                or meta.get("language_info", {}).get("name") or "python")
    try:
        declared = declared_parameters(nb, language)
    except NotIntrospectable as exc:
        raise CliError(f"{args.notebook}: {exc}.") from None
    if args.json:
        echo(json.dumps({"notebook": args.notebook, "language": language, "has_parameters_cell": declared is not None,
                          "parameters": [p.to_json() for p in declared or []]}, indent=2, default=str))
        return 0
    if declared is None:
        echo(f"{args.notebook} has no cell tagged `parameters`: parameters are injected at the top.")
        return 0
    rows = [(p.name, p.inferred_type, p.default_source, p.help) for p in declared]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(("name", "type", "default"))]
    echo(f"Parameters of {args.notebook} ({language}):")
    echo(f"  {'name':<{widths[0]}}  {'type':<{widths[1]}}  {'default':<{widths[2]}}  help")
    for name, kind, default, help_text in rows:
        echo(f"  {name:<{widths[0]}}  {kind:<{widths[1]}}  {default:<{widths[2]}}  {help_text}".rstrip())
    return 0
