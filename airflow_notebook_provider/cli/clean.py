"""``clean``: retention for ``[notebook] output_base`` (``retention.clean``, the code the example maintenance DAG
runs). Prints each entry it removes (or would, with ``--dry-run``) and the bytes freed."""

from __future__ import annotations

import argparse
import json

from airflow_notebook_provider.cli import storage
from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.cli.untrusted import echo
from airflow_notebook_provider.maintenance.retention import Removal, RetentionError, clean, human_bytes, parse_age


def _output_base(given: str | None) -> str:
    if given:
        return given
    try:
        with storage.airflow_imported():
            from airflow_notebook_provider.task.outputs import output_base

            return output_base()
    except Exception as exc:  # noqa: BLE001 - no Airflow configuration here: say how to name the folder
        raise CliError(f"Cannot read [notebook] output_base from the Airflow configuration ({exc}); pass "
                       "--output-base FOLDER.") from None


def cmd_clean(args: argparse.Namespace) -> int:
    try:
        age = parse_age(args.older_than)
        base = _output_base(args.output_base)
        verb = "would remove" if args.dry_run else "removed"

        def show(removal: Removal) -> None:
            if not args.json:
                echo(f"{verb}  {human_bytes(removal.bytes):>9}  {removal.path}{'/' if removal.kind == 'folder' else ''}")

        result = clean(base, age, keep_failed=args.keep_failed, dry_run=args.dry_run, on_remove=show)
    except RetentionError as exc:
        raise CliError(str(exc)) from None
    echo(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
    return 0
