"""``airflow-notebook`` handed a hostile notebook or link: it acts on nothing a notebook claims without asking.

An output notebook, its metadata and a viewer link are data that anyone who can write a task's output location or
its XComs controls. Each test gives the command such data, as a user would receive it, and checks what reaches the
user's screen, environment and disk. Kernels are real; a kernelspec that shadows ``python3`` counts the kernels
started, so "nothing ran" is seen, not assumed.
"""

from __future__ import annotations

import http.server
import json
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import AIRFLOW_NOTEBOOK, code_cells, python_notebook, read_nb, run_dag, stream_text
from tests.helpers import cli as plain_cli

EXE = AIRFLOW_NOTEBOOK
START = pendulum.datetime(2024, 1, 1, tz="UTC")
CONTROL = ("\x1b", "\x07", "\x9b", "\x9d", "\x00")


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        answer: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command in a subprocess. ``answer``: stdin is a terminal holding that line (already typed,
    so a command that does not ask ignores it); else stdin is not a terminal."""
    base = {**os.environ, **(env or {})}
    if answer is None:
        return plain_cli(*args, cwd=cwd, env=env)
    primary, replica = pty.openpty()
    try:
        os.write(primary, answer.encode() + b"\n")
        return subprocess.run([EXE, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=180,
                              stdin=replica)
    finally:
        os.close(replica)
        os.close(primary)


def shown(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def write_nb(path: Path, *sources: str, metadata: dict[str, Any] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(python_notebook(*sources, metadata=metadata), str(path))
    return path


def claimed_output(path: Path, *, input_path: str, parameters: dict[str, Any] | None = None,
                   secrets: dict[str, str] | None = None) -> Path:
    """An output notebook as anyone can write one: only the metadata ``rerun`` reads."""
    meta: dict[str, Any] = {"papermill": {"input_path": input_path, "parameters": parameters or {}}}
    if secrets is not None:
        meta["airflow_notebook"] = {"secret_parameters": secrets}
    return write_nb(path, "print('an output notebook')", metadata=meta)


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """(env, marker): a ``python3`` kernelspec on JUPYTER_PATH that appends a line to ``marker`` when it starts,
    then is the ordinary ipykernel. Every kernel the command starts, early or not, goes through it."""
    root = tmp_path / "jupyter-path"
    marker = tmp_path / "kernels-started.txt"
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    code = (f"import pathlib; pathlib.Path({str(marker)!r}).open('a').write('started\\n'); "
            "from ipykernel import kernelapp; kernelapp.launch_new_instance()")
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", code, "-f", "{connection_file}"],
        "display_name": "Python 3 (counted)", "language": "python",
    }))
    paths = [str(root), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    yield {"JUPYTER_PATH": os.pathsep.join(paths)}, marker


def started(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """(base URL, requested paths) of a file server on 127.0.0.1 serving ``tmp_path / 'www'``; stopped after."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def send_head(self) -> Any:
            requests.append(self.path)
            return super().send_head()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write_nb(tmp_path / "project" / "report.ipynb", "#parameters\nregion = 'eu'\nlimit = 10",
                    "print(f'{limit} rows for {region}')")


# -- rerun shows what it runs and asks ----------------------------------------------------------------------------


def test_rerun_without_a_terminal_or_yes_refuses_and_runs_nothing(report: Path, tmp_path: Path, kernels) -> None:
    env, marker = kernels
    out = tmp_path / "out.ipynb"
    assert cli("run", str(report), "-o", str(out), "-p", "region", "us", env=env).returncode == 0
    before = started(marker)
    assert before >= 1  # the counting kernelspec is the one in use
    rerun = tmp_path / "rerun.ipynb"

    proc = cli("rerun", str(out), "-o", str(rerun), env=env)

    assert proc.returncode == 2, shown(proc)
    assert "--yes" in proc.stderr and "no terminal" in proc.stderr
    # It showed what it would have run: the recorded notebook, where, which kernel, with which parameters.
    assert f"notebook    {report} (recorded in {out}; unchanged since that run)" in proc.stderr
    assert f"in folder   {report.parent}" in proc.stderr
    assert "kernel      python3 (the notebook's kernelspec)" in proc.stderr
    assert "parameters  region='us'" in proc.stderr
    assert not rerun.exists()
    assert started(marker) == before  # no kernel, not even one started early


def test_rerun_with_yes_runs(report: Path, tmp_path: Path, kernels) -> None:
    env, marker = kernels
    out = tmp_path / "out.ipynb"
    assert cli("run", str(report), "-o", str(out), "-p", "region", "us", env=env).returncode == 0
    rerun = tmp_path / "rerun.ipynb"

    proc = cli("rerun", str(out), "-o", str(rerun), "--yes", env=env)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(rerun)
    assert "parameters  region='us'" in proc.stderr  # shown with --yes too, for the log of a script
    assert stream_text(code_cells(read_nb(rerun))[2]) == "10 rows for us\n"


def test_rerun_asks_on_a_terminal(report: Path, tmp_path: Path, kernels) -> None:
    env, marker = kernels
    out = claimed_output(tmp_path / "out.ipynb", input_path=str(report), parameters={"limit": 3})
    rerun = tmp_path / "rerun.ipynb"

    declined = cli("rerun", str(out), "-o", str(rerun), answer="n", env=env)
    assert declined.returncode == 2 and "Run it? [y/N]" in declined.stderr
    assert "not confirmed" in declined.stderr
    assert not rerun.exists() and started(marker) == 0

    accepted = cli("rerun", str(out), "-o", str(rerun), answer="y", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert stream_text(code_cells(read_nb(rerun))[2]) == "3 rows for eu\n"


# -- rerun runs only an input the user can see ----------------------------------------------------------------------


def test_rerun_refuses_a_recorded_url_unless_notebook_names_it(report: Path, tmp_path: Path, http_server,
                                                               kernels) -> None:
    base, requests = http_server
    env, marker = kernels
    (tmp_path / "www" / "evil.ipynb").write_bytes(report.read_bytes())
    url = f"{base}/evil.ipynb"
    out = claimed_output(tmp_path / "out.ipynb", input_path=url, parameters={"limit": 4})
    rerun = tmp_path / "rerun.ipynb"

    proc = cli("rerun", str(out), "-o", str(rerun), answer="y", env=env)

    assert proc.returncode == 2, shown(proc)
    assert f"records its input as the URL {url}" in proc.stderr and f"--notebook {url}" in proc.stderr
    assert requests == []  # not even fetched
    assert not rerun.exists() and started(marker) == 0

    # Named explicitly, it is the user's choice.
    proc = cli("rerun", str(out), "-o", str(rerun), "--notebook", url, "--yes", env=env)
    assert proc.returncode == 0, proc.stderr
    assert requests and f"notebook    {url} (given with --notebook)" in proc.stderr
    assert stream_text(code_cells(read_nb(rerun))[2]) == "4 rows for eu\n"


def test_rerun_refuses_a_recorded_relative_input_unless_notebook_names_it(report: Path, tmp_path: Path,
                                                                         kernels) -> None:
    env, marker = kernels
    cwd = report.parent  # the relative path would resolve here, to a notebook that exists
    rerun = tmp_path / "rerun.ipynb"
    for recorded in ("report.ipynb", "./report.ipynb", "~/report.ipynb", "file://report.ipynb"):
        out = claimed_output(tmp_path / "out.ipynb", input_path=recorded, parameters={"limit": 5})
        proc = cli("rerun", str(out), "-o", str(rerun), answer="y", cwd=cwd, env=env)
        assert proc.returncode == 2, (recorded, shown(proc))
        assert "not an absolute path" in proc.stderr and "--notebook" in proc.stderr
        assert not rerun.exists() and started(marker) == 0

    proc = cli("rerun", str(out), "-o", str(rerun), "--notebook", "report.ipynb", "--yes", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    assert stream_text(code_cells(read_nb(rerun))[2]) == "5 rows for eu\n"


# -- secrets come only from NOTEBOOK_SECRET_<name> ------------------------------------------------------------------


def test_a_recorded_secret_variable_is_never_read(tmp_path: Path, kernels) -> None:
    """The notebook says its secret came from AWS_SECRET_ACCESS_KEY: rerun reads NOTEBOOK_SECRET_token instead."""
    env, _ = kernels
    seen = tmp_path / "project" / "seen.txt"
    notebook = write_nb(tmp_path / "project" / "leak.ipynb", "#parameters\ntoken = ''",
                        f"open({str(seen)!r}, 'w').write(token[::-1])")  # reversed: not masked in any output
    out = claimed_output(tmp_path / "out.ipynb", input_path=str(notebook), secrets={"token": "AWS_SECRET_ACCESS_KEY"})
    rerun = tmp_path / "rerun.ipynb"
    env = {**env, "AWS_SECRET_ACCESS_KEY": "aws-value-42"}
    assert "NOTEBOOK_SECRET_token" not in os.environ

    proc = cli("rerun", str(out), "-o", str(rerun), answer="y", env=env)
    assert not seen.exists(), f"the kernel was given {seen.read_text()[::-1]!r}"
    assert proc.returncode == 2 and "set NOTEBOOK_SECRET_token" in proc.stderr, shown(proc)
    assert not rerun.exists()

    # The variable the name gives is read, and only it.
    proc = cli("rerun", str(out), "-o", str(rerun), answer="y", env={**env, "NOTEBOOK_SECRET_token": "prefixed-7"})
    assert proc.returncode == 0, proc.stderr
    assert "secrets     token (from $NOTEBOOK_SECRET_token)" in proc.stderr
    assert seen.read_text()[::-1] == "prefixed-7"
    # pull does not advise exporting the variable the notebook names.
    pulled = cli("pull", str(out), "-o", str(tmp_path / "pulled"))
    assert pulled.returncode == 0, pulled.stderr
    assert "export AWS_SECRET_ACCESS_KEY" not in pulled.stdout
    assert "do not come from a NOTEBOOK_SECRET_ variable: token" in pulled.stdout

    # -s takes a parameter name: -s AWS_SECRET_ACCESS_KEY reads $NOTEBOOK_SECRET_AWS_SECRET_ACCESS_KEY.
    proc = cli("run", str(notebook), "-o", str(tmp_path / "run.ipynb"), "-s", "AWS_SECRET_ACCESS_KEY", env=env)
    assert proc.returncode == 2 and "set NOTEBOOK_SECRET_AWS_SECRET_ACCESS_KEY" in proc.stderr
    # A recorded name that is not an identifier cannot build a variable name either.
    odd = claimed_output(tmp_path / "odd.ipynb", input_path=str(notebook), secrets={"x\nAWS_SECRET_ACCESS_KEY": "y"})
    proc = cli("rerun", str(odd), "-o", str(rerun), "--yes", env=env)
    assert proc.returncode == 2 and "which is not an identifier" in proc.stderr


# -- pull writes only into the folder the user chose ----------------------------------------------------------------


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_pull_writes_only_into_the_chosen_folder(airflow_db, tmp_path: Path, http_server) -> None:
    # A task's output pulled through its viewer link (either form) without -o: both copies go to the current folder,
    # none beside the location the task's record names.
    nb = write_nb(tmp_path / "nb.ipynb", "print('hi')")
    with DAG(dag_id="t_cli_pull_here", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb))
    task = run_dag(dag)["nb"]
    assert task.state == "success"
    recorded = Path(task.xcom["output_notebook"])
    beside = set(os.listdir(recorded.parent))
    query = {"run_id": read_nb(recorded)["metadata"]["airflow"]["run_id"], "task_id": "nb", "map_index": -1,
             "try_number": 1}
    links = {
        "relative": f"/notebook/dags/{quote('t_cli_pull_here', safe='')}/view?{urlencode(query)}",
        "absolute": f"http://airflow.example.com/notebook/dags/{quote('t_cli_pull_here', safe='')}/view?{urlencode(query)}",
    }
    for form, link in links.items():
        work = tmp_path / f"work-{form}"
        work.mkdir()
        proc = cli("pull", link, cwd=work)
        assert proc.returncode == 0, (form, proc.stderr)
        assert _files(work) == {"t_cli_pull_here__nb__attempt-1.ipynb", "t_cli_pull_here__nb__attempt-1.debug.ipynb"}
        assert set(os.listdir(recorded.parent)) == beside, form

    # Names taken from a notebook's metadata, or from a URL, climb nowhere and hide nothing.
    dest = tmp_path / "dest"
    hostile = write_nb(tmp_path / "in" / "hostile.ipynb", "print(1)", metadata={"airflow": {
        "dag_id": "../../../escaped", "task_id": "/tmp/abs", "map_index": 0, "try_number": "1/../../up"}})
    proc = cli("pull", str(hostile), "-o", str(dest))
    assert proc.returncode == 0, proc.stderr
    base, _ = http_server
    www = tmp_path / "www"
    # The server maps each URL to a file as http.server does (decoded, '..' dropped); the command sees the URL.
    for url_path, served in (("..%2F..%2Fclimbed.ipynb", "climbed.ipynb"), ("%2Fetc%2Fabs.ipynb", "etc/abs.ipynb"),
                             (".hidden.ipynb", ".hidden.ipynb"), ("%1b%5d0%3bt%07.ipynb", "\x1b]0;t\x07.ipynb")):
        write_nb(www / served, "print(2)")
        proc = cli("pull", f"{base}/{url_path}", "-o", str(dest))
        assert proc.returncode == 0, (url_path, proc.stderr)
    names = _files(dest)
    assert len(names) == 10, names  # 5 notebooks, each with its debug copy, all directly in dest
    assert all("/" not in name and not name.startswith(".") for name in names), names
    assert not any(ch in name for name in names for ch in CONTROL), names
    made = {p for p in _files(tmp_path) if not p.startswith(("dest/", "in/", "www/", "work-", "jupyter-path/"))}
    assert made == {"nb.ipynb"}, made


# -- text from a notebook reaches the terminal inert ----------------------------------------------------------------


def assert_inert(proc: subprocess.CompletedProcess[str], what: str) -> None:
    found = [repr(ch) for ch in CONTROL if ch in shown(proc)]
    assert not found, f"{what} printed {found}: {shown(proc)!r}"


def test_escape_sequences_from_a_notebook_are_printed_inert(tmp_path: Path) -> None:
    """A cell raising RuntimeError('\\x1b]0;pwned\\x07 boom'), run for real, then every command that shows it."""
    osc_title, osc_link = "\x1b]0;pwned\x07", "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"
    notebook = write_nb(
        tmp_path / "hostile.ipynb",
        "#parameters\nlabel = ''",
        f"x = 1  # link: {osc_link}",  # raw ESC bytes in the source: the cell table shows it
        "print('\\x9b2J\\x1b[2J\\x1b]0;from stdout\\x07', label)",
        "raise RuntimeError('\\x1b]0;pwned\\x07 boom')",
    )
    label = f"{osc_title}value"
    failed, passed = tmp_path / "failed.ipynb", tmp_path / "passed.ipynb"

    proc = cli("run", str(notebook), "-o", str(failed), "-p", "label", label)
    assert proc.returncode == 1
    assert_inert(proc, "run")
    assert "RuntimeError: \\x1b]0;pwned\\x07 boom" in proc.stderr  # the message is there, visibly odd
    assert read_nb(failed)["cells"]  # the notebook itself keeps what the cell raised

    proc = cli("run", str(notebook), "-o", str(tmp_path / "logged.ipynb"), "--log-output", "-p", "label", label)
    assert proc.returncode == 1
    assert_inert(proc, "run --log-output")
    assert "from stdout" in proc.stderr

    for args in (("inspect", str(failed)), ("inspect", str(failed), "--json"), ("pull", str(failed))):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert_inert(proc, " ".join(args[:1] + args[2:]))
        assert "boom" in proc.stdout
    assert "x = 1  # link: \\x1b]8;;http://evil.example\\x1b\\click" in cli("inspect", str(failed)).stdout

    # diff against a run that passed: outputs, sources and the error line all differ.
    clean_nb = write_nb(tmp_path / "clean.ipynb", "#parameters\nlabel = ''", "x = 1", "print(label)", "pass")
    assert cli("run", str(clean_nb), "-o", str(passed)).returncode == 0
    for args in (("diff", str(passed), str(failed)), ("diff", str(passed), str(failed), "--json")):
        proc = cli(*args)
        assert proc.returncode == 1, proc.stderr
        assert_inert(proc, " ".join(args[:1] + args[3:]))
        assert "boom" in proc.stdout

    # rerun's summary shows the recorded parameter value before it asks.
    proc = cli("rerun", str(failed), "-o", str(tmp_path / "rerun.ipynb"))
    assert proc.returncode == 2
    assert_inert(proc, "rerun")
    assert "label=" in proc.stderr


# -- invisible and reordering characters are shown as escapes -------------------------------------------------------

INVISIBLE = ("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u200e\u200f\u2028\u2029"
             "\ufeff\u061c\u180e")
"""Bidi embeddings, overrides and isolates, zero-width characters, line and paragraph separators, BOM: they
reorder or hide text on a terminal (``Trojan Source``), so a command shows them as ``\\u202e``."""


def assert_visible(proc: subprocess.CompletedProcess[str], what: str) -> None:
    found = [f"U+{ord(ch):04X}" for ch in INVISIBLE if ch in shown(proc)]
    assert not found, f"{what} printed {found} raw: {shown(proc)!r}"


def test_bidi_and_zero_width_characters_are_printed_as_escapes(tmp_path: Path) -> None:
    """An error and a parameter carrying every such character, run for real, then inspected."""
    notebook = write_nb(
        tmp_path / "trojan.ipynb",
        "#parameters\nlabel = ''  # the label\u202e reversed",
        "print(label)",
        f"raise RuntimeError('access ' + ''.join(map(chr, {[ord(c) for c in INVISIBLE]})) + ' denied')",
    )
    out = tmp_path / "out.ipynb"
    proc = cli("run", str(notebook), "-o", str(out), "-p", "label", "admin\u202e\u2066user\u200b")
    assert proc.returncode == 1, shown(proc)
    assert_visible(proc, "run")
    escapes = "".join(f"\\u{ord(ch):04x}" for ch in INVISIBLE)
    assert f"access {escapes} denied" in proc.stderr, proc.stderr
    data = read_nb(out)
    assert data["metadata"]["papermill"]["parameters"]["label"] == "admin\u202e\u2066user\u200b"  # kept as it is

    proc = cli("inspect", str(out))
    assert proc.returncode == 0, proc.stderr
    assert_visible(proc, "inspect")
    assert f"access {escapes} denied" in proc.stdout and "\\u202e" in proc.stdout, proc.stdout
    assert "admin\\u202e\\u2066user" in proc.stdout, proc.stdout

    for args in (("inspect", str(out), "--json"), ("pull", str(out)), ("params", str(notebook))):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert_visible(proc, " ".join(args[:1] + args[2:]))
    assert "the label\\u202e reversed" in cli("params", str(notebook)).stdout

    proc = cli("rerun", str(out), "-o", str(tmp_path / "rerun.ipynb"))
    assert proc.returncode == 2
    assert_visible(proc, "rerun")


# -- a parameters cell shaped to break the reader -------------------------------------------------------------------


@pytest.mark.parametrize(("source", "why"), [
    ("x = " + "-" * 200_000 + "1", "nested too deeply"),
    ("x = " + "[" * 100_000 + "]" * 100_000, "not valid Python"),
    ("x = f" + "()" * 100_000, "nested too deeply"),
], ids=["200k unary minus", "100k brackets", "100k calls"])
def test_params_of_a_pathological_cell_says_which_cell_and_what_to_do(tmp_path: Path, source: str, why: str) -> None:
    notebook = write_nb(tmp_path / "odd.ipynb", "import os", "#parameters\n" + source, "print(x)")
    proc = cli("params", str(notebook))
    assert proc.returncode == 2, shown(proc)
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert f"{notebook}: the parameters cell (cell 2)" in proc.stderr and why in proc.stderr, proc.stderr
    assert len(proc.stderr) < 2000  # the message, not the cell


def test_params_of_a_huge_string_default(tmp_path: Path) -> None:
    big = "ab" * 2_500_000
    notebook = write_nb(tmp_path / "big.ipynb", f"#parameters\nx = '{big}'  # a big default\nn = 3")
    proc = cli("params", str(notebook), "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["parameters"]
    assert [(p["name"], p["type"], p["help"]) for p in got] == [("x", "str", "a big default"), ("n", "int", "")]
    assert got[0]["value"] == big


def test_every_invisible_character_python_knows_is_escaped(capsys) -> None:
    """The escaped set is written out as ranges (the command starts fast); checked here against the Unicode
    database of the Python running the tests: every format character, line and paragraph separator and lone
    surrogate comes out as an escape, and ordinary text (accents, CJK, emoji) as it is."""
    import unicodedata

    from airflow_notebook_provider.cli.untrusted import echo

    hidden = [chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) in ("Cf", "Zl", "Zp", "Cs")]
    echo("".join(hidden))
    out = capsys.readouterr().out
    assert not [f"U+{ord(ch):04X}" for ch in hidden if ch in out]
    assert "\\u202e" in out and "\\U000e0041" in out
    echo("façade 数据 🙂 naïve")
    assert capsys.readouterr().out == "façade 数据 🙂 naïve\n"
