"""MkDocs hooks (mkdocs.yml ``hooks:``): the reference pages are generated from the code, so they cannot drift.

A page holds a marker on a line of its own; the hook replaces it with Markdown built from the code:

- ``<!-- generated:config -->``: the ``[notebook]`` options, from ``get_provider_info()["config"]`` (what Airflow
  itself reads for ``airflow config list`` and its defaults), which is built from ``config.OPTIONS``, where each
  option is declared once.
- ``<!-- generated:cli -->``: every ``airflow-notebook`` subcommand's usage and arguments, from the CLI's own
  argparse parser (``airflow_notebook_provider.cli.build_parser``).
- ``<!-- generated:modules -->``: every module of the package with the first sentence of its docstring, read from
  the source without importing it. The page must name every folder of the package (the hand-written "which
  process runs it" table), or the build fails.

A marker that cannot be filled fails the build (``PluginError``) rather than leaving a hole in the site.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "airflow_notebook_provider"
PROG = "airflow-notebook"
USAGE_WIDTH = 100


def _escape(text: str) -> str:
    """Markdown-safe text for a table cell, with ``code spans`` kept as they are (they need no escaping)."""
    parts = re.split(r"(`+[^`]*`+)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span
            out.append(part)
        else:
            part = part.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            out.append(re.sub(r"([*_\[\]|{}#])", r"\\\1", part))
    return " ".join("".join(out).split())


def _code(text: str) -> str:
    """``text`` as a code span, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


# -- [notebook] configuration ----------------------------------------------------------------------------------


def config_markdown() -> str:
    """A table of every option (name, default, type), then a section per option: description, example, variable."""
    from airflow_notebook_provider.get_provider_info import get_provider_info

    config: dict[str, Any] = get_provider_info()["config"]
    if not config:
        raise PluginError("get_provider_info() declares no config section: nothing to document")
    lines: list[str] = []
    for section, spec in config.items():
        options: dict[str, dict[str, Any]] = spec["options"]
        lines += [f"Section `[{section}]`: {_escape(spec.get('description', ''))}", ""]
        lines += ["| Option | Default | Type |", "| --- | --- | --- |"]
        for name, option in options.items():
            lines.append(f"| [`{name}`](#{name}) | {_default(option)} | {option.get('type', 'string')} |")
        lines.append("")
        for name, option in options.items():
            env = f"AIRFLOW__{section.upper()}__{name.upper()}"
            lines += [f"### `{name}` {{#{name}}}", "", _escape(option["description"]), ""]
            lines.append(f"- Default: {_default(option)}")
            if option.get("example"):
                lines.append(f"- Example: {_code(str(option['example']))}")
            lines.append(f"- Environment variable: `{env}`")
            if option.get("version_added"):
                lines.append(f"- Added in {option['version_added']}")
            lines.append("")
    return "\n".join(lines)


def _default(option: dict[str, Any]) -> str:
    default = option.get("default")
    if default in (None, ""):
        return "*empty*"
    text = _code(str(default))
    if option.get("type") == "integer" and str(option["default"]).isdigit() and int(default) >= 1024:
        text += f" ({_size(int(default))})"
    return text


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


# -- airflow-notebook's command line ---------------------------------------------------------------------------


def cli_markdown() -> str:
    """Usage and arguments of the parser and of each subcommand, in the parser's own order."""
    from airflow_notebook_provider.cli import build_parser

    parser = build_parser()
    lines = ["### `airflow-notebook`", "", _escape(parser.description or ""), ""]
    lines += _parser_section(parser, skip_subcommands=True)
    commands = list(_subcommands(parser))
    if not commands:
        raise PluginError("airflow-notebook's parser has no subcommands: nothing to document")
    for name, help_text, sub in commands:
        lines += [f"### `airflow-notebook {name}` {{#{name}}}", "", _escape(help_text), ""]
        lines += _parser_section(sub, skip_subcommands=False)
    return "\n".join(lines)


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse has no public way to list a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _parser_section(parser: argparse.ArgumentParser, *, skip_subcommands: bool) -> list[str]:
    parser.formatter_class = _fixed_width
    prefix = "usage: "
    usage = "\n".join(line.removeprefix(" " * len(prefix))  # continuation lines stay aligned under the first
                      for line in parser.format_usage().strip().removeprefix(prefix).splitlines())
    lines = ["```text", usage, "```", "", "| Argument | Meaning |", "| --- | --- |"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):  # every command has -h
            continue
        if isinstance(action, argparse._SubParsersAction):
            if not skip_subcommands:
                raise PluginError(f"{parser.prog}: nested subcommands are not documented by docs/hooks.py")
            names = ", ".join(action.choices)
            lines.append(f"| `COMMAND` | one of {names} (below) |")
            continue
        lines.append(f"| {_argument(action)} | {_help(parser, action)} |")
    lines.append("")
    return lines


def _fixed_width(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=USAGE_WIDTH)


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0:
        return ", ".join(f"`{o}`" for o in action.option_strings)
    metavar = action.metavar or action.dest.upper()
    shown = " ".join(metavar) if isinstance(metavar, tuple) else metavar
    return ", ".join(f"`{o} {shown}`" for o in action.option_strings)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": parser.prog}
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if isinstance(action, argparse._AppendAction):
        notes.append("repeatable")
    suffix = f" ({', '.join(notes)})" if notes else ""
    return _escape(text + suffix)


# -- the package's modules -------------------------------------------------------------------------------------


def modules_markdown(page_text: str) -> str:
    """One table per folder of the package: each module and the first sentence of its docstring."""
    lines: list[str] = []
    folders = sorted({p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts})
    for folder in folders:
        rel = folder.relative_to(REPO).as_posix() + "/"
        short = folder.relative_to(PACKAGE).as_posix() + "/" if folder != PACKAGE else None
        if short and f"`{short}`" not in page_text:
            raise PluginError(f"docs/architecture.md does not say which process runs `{short}`: add it to the "
                              "table of folders there")
        lines += [f"#### `{rel}`", "", "| Module | What it is |", "| --- | --- |"]
        for module in sorted(folder.glob("*.py")):
            summary = _summary(module)
            if module.name == "__init__.py" and not summary:
                continue
            lines.append(f"| `{module.name}` | {_escape(summary) or '—'} |")
        lines.append("")
    return "\n".join(lines)


def _summary(module: Path) -> str:
    doc = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?(?<!e\.g)(?<!i\.e)\.)(\s|$)", paragraph)  # the first sentence
    return match.group(1) if match else paragraph


# -- the hook ----------------------------------------------------------------------------------------------------


MARKERS: dict[str, Callable[[str], str]] = {
    "<!-- generated:config -->": lambda _page: config_markdown(),
    "<!-- generated:cli -->": lambda _page: cli_markdown(),
    "<!-- generated:modules -->": modules_markdown,
}


def on_page_markdown(markdown: str, **_: Any) -> str:
    for marker, build in MARKERS.items():
        line = re.compile(rf"^{re.escape(marker)}$", re.M)  # a marker on a line of its own, not one quoted in text
        if line.search(markdown):
            generated = build(markdown)
            markdown = line.sub(lambda _match, text=generated: text, markdown)  # the text as it is, not a template
    return markdown
