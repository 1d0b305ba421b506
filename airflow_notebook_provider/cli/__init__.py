"""``airflow-notebook``: debug a notebook task like a local problem, on the same engine the operator uses.

- ``run``: run a notebook as a task would (same injection, metadata, error banner and failure message).
- ``pull``: fetch an output notebook (path, URL or the UI's viewer link) and write a ready-to-debug copy.
- ``rerun``: run the original notebook again with the parameters an output notebook recorded, after showing what
  it runs and asking (``--yes`` for scripts).
- ``inspect``: print the record of a run (identity, parameters, status, failing cell, durations per cell).
- ``params``: the parameters a notebook declares (name, default, type, help), without running it.
- ``diff``: what changed between two runs (parameters, input, outputs, statuses, times); exit 0 same, 1 different.
- ``clean``: remove outputs under ``[notebook] output_base`` older than a limit (retention), keeping tombstones.

Notebooks, their metadata and viewer links are data, never instructions (``untrusted.py``): whatever the command
prints goes through ``untrusted.echo``, which escapes control characters.

Every ``--json`` prints JSON alone on stdout (Airflow's and the engine's logs go to stderr), so it can be piped.

This module parses arguments; ``run.py`` and ``debug.py`` hold the commands, ``storage.py`` and ``progress.py``
what they read, write and show. Local files need no Airflow configuration: Airflow is imported only for
``--conn-id`` and viewer links.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from airflow_notebook_provider import __version__
from airflow_notebook_provider.cli.clean import cmd_clean
from airflow_notebook_provider.cli.debug import cmd_inspect, cmd_pull
from airflow_notebook_provider.cli.diff import cmd_diff
from airflow_notebook_provider.cli.params import cmd_params
from airflow_notebook_provider.cli.run import EXIT_CODES, PROG, cmd_rerun, cmd_run
from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.cli.untrusted import echo
from airflow_notebook_provider.engine import SECRET_ENV_PREFIX, NotebookError

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run, pull, rerun and inspect notebooks the way airflow-notebook-provider tasks run them."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_conn(p: argparse.ArgumentParser) -> None:
        p.add_argument("--conn-id", help="Airflow connection for object-storage URLs (e.g. an aws connection)")

    def add_exec(p: argparse.ArgumentParser) -> None:
        p.add_argument("-k", "--kernel", help="kernel to run (default: the notebook's kernelspec, then python3)")
        p.add_argument("--language", help="language the parameters are written in (default: the kernel's)")
        p.add_argument("--python", metavar="PATH", help="interpreter of the notebook's own environment (with ipykernel)")
        p.add_argument("--cell-timeout", type=float, metavar="S", help="seconds one cell may run (default: no limit)")
        p.add_argument("--log-output", action="store_true", help="print the cells' output and progress as a task log does")
        p.add_argument("--report", action="append", choices=("html", "markdown", "pdf"), metavar="FORMAT",
                       help="render a report beside the output, as report_formats does: html, markdown or pdf "
                            "(repeat for several)")
        p.add_argument("--report-mode", action="store_true", help="hide cell sources in the output and the reports")
        p.add_argument("--collect", action="append", metavar="GLOB",
                       help="copy files the notebook wrote (a glob relative to its working folder, e.g. 'out/*.csv') "
                            "beside the output, as collect_files does (repeat for several)")
        add_conn(p)

    p = sub.add_parser("run", help="run a notebook locally exactly as a task would", epilog=EXIT_CODES)
    p.add_argument("notebook", help="input notebook: path or URL")
    p.add_argument("-o", "--output", help="output notebook (default: NAME.out.ipynb beside the input)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter; VALUE is read as YAML (3, 0.5, true, null, 2024-01-01, text)")
    p.add_argument("-f", "--parameters-file", metavar="params.yaml", help="YAML mapping of parameters (-p wins)")
    p.add_argument("-s", "--secret", action="append", metavar="NAME",
                   help=f"a secret parameter read by the kernel from ${SECRET_ENV_PREFIX}NAME, never written")
    add_exec(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("pull", help="fetch an output notebook (path, URL or viewer link) and write a debug copy")
    p.add_argument("location", help="output notebook path, object-storage URL, or the UI's viewer link")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="folder for the copies (default: beside a local "
                                                             "notebook, else the current folder)")
    p.add_argument("--format", default="ipynb", metavar="FMT",
                   help="write the debug copy as a text notebook in this jupytext format (py:percent, py:light, md, "
                        "md:myst, R, ...; 'input': the text format the task's input notebook had); default: ipynb")
    add_conn(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("rerun", help="run the original notebook again with an output notebook's parameters",
                       epilog=EXIT_CODES)
    p.add_argument("output_notebook", help="an output notebook written by a task or by `run`")
    p.add_argument("-o", "--output", help="new output notebook (default: NAME.rerun.ipynb beside it)")
    p.add_argument("--notebook", help="run this notebook instead of the recorded input (e.g. your fixed copy); "
                                      "needed when the record names a URL or a relative path")
    p.add_argument("-y", "--yes", action="store_true",
                   help="run without asking (it shows what it runs, then asks on a terminal; without one it refuses)")
    add_exec(p)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("params", help="list the parameters a notebook declares, without running it")
    p.add_argument("notebook", help="notebook: path or URL")
    p.add_argument("--language", help="read the parameters cell as this language (default: the notebook's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_conn(p)
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("inspect", help="print the record of a run")
    p.add_argument("output_notebook", help="output notebook path, URL or viewer link")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_conn(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("diff", help="compare two runs: parameters, input, outputs, statuses, times (exit 1 if they differ)")
    p.add_argument("a", help="output notebook A (the earlier run): path, URL or viewer link")
    p.add_argument("b", help="output notebook B: path, URL or viewer link")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_conn(p)
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("clean", help="remove outputs under [notebook] output_base older than a limit")
    p.add_argument("--older-than", required=True, metavar="AGE", help="age limit: 30d, 12h, 90m, 2w, 45s")
    p.add_argument("--keep-failed", action="store_true", help="keep attempts whose notebook failed")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    p.add_argument("--output-base", metavar="FOLDER",
                   help="folder to clean (default: [notebook] output_base of the Airflow configuration)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_clean)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, NotebookError) as exc:
        echo(f"{PROG}: error: {' '.join(str(exc).splitlines())}", err=True)  # one line
        return 2
    except OSError as exc:  # a file or store that cannot be read: a message, not a traceback
        echo(f"{PROG}: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        echo(f"{PROG}: interrupted", err=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
