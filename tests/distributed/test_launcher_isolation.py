"""What one run's kernel can learn of other runs and of the worker through the kernel launcher (security issue,
findings 1 and 4), checked where a user meets it:

- on real Celery workers (``CELERY_CONFIG``, the cluster of this package): tasks of one DAG get secret parameters,
  then tasks of another DAG, on the same workers, scan their own kernel's memory for them and find nothing;
- a notebook task run by a worker that is not root (``dag.test()`` as ``nobody``, its kernels forked by a launcher
  as ``worker.start_launcher`` starts it, or started as new processes): its kernel cannot read the environment or
  memory of the task process or the launcher, so not the ``AIRFLOW_CONN_*`` kept out of its own environment, and
  still reads its own ``/proc/self`` as usual.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.distributed.services import Cluster, wait_dags_parsed
from tests.helpers import SECRET_SIZES, memory_scan, processes_with_env, python_notebook

REPO = Path(__file__).resolve().parents[2]
WORKERS = ("worker-a", "worker-b")


def _notebook(path: Path, *sources: str) -> None:
    nbformat.write(python_notebook(*sources), str(path))


def _printed(nb: dict[str, Any]) -> str:
    """What the notebook's last cell printed."""
    texts = [o.get("text", "") for o in nb["cells"][-1]["outputs"]]
    return "".join(t if isinstance(t, str) else "".join(t) for t in texts)


ISOLATION_DAGS = '''
import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
NAMES = {names!r}

with DAG("iso_secrets", schedule=None, start_date=START, max_active_tasks=8):
    # Secret parameters from the run's conf: in the task process and its kernel's environment only.
    for i in range({tasks}):
        NotebookOperator(task_id=f"uses_secret_{{i}}", notebook={uses!r},
                         parameters={{n: "{{{{ dag_run.conf['" + n + "'] }}}}" for n in NAMES}},
                         secret_parameters=NAMES)

with DAG("iso_scan", schedule=None, start_date=START, max_active_tasks=8):
    for i in range({tasks}):
        NotebookOperator(task_id=f"scan_{{i}}", notebook={scan!r})
'''


def test_a_kernel_on_a_celery_worker_finds_no_secret_of_an_earlier_dag(cluster: Cluster, staging: Path) -> None:
    """On real Celery workers: DAG A's tasks get secret parameters; once A has ended, DAG B's tasks,
    forked by the same workers' launchers, scan their own memory for them and find none."""
    values = {f"s{n}": ("s" + secrets.token_hex(n))[:n] for n in SECRET_SIZES}
    work = staging / "work"
    uses, scan = work / "iso_uses.ipynb", work / "iso_scan.ipynb"
    _notebook(uses, "#parameters\n" + "\n".join(f"{n} = ''" for n in values),
              f"print(sum(len(v) for v in ({', '.join(values)},)))")
    _notebook(scan, memory_scan(*values.values()))
    tasks = 6  # more than the two workers' four slots: each worker runs some of each DAG
    (cluster.dags / "iso_dags.py").write_text(ISOLATION_DAGS.format(names=list(values), tasks=tasks, uses=str(uses),
                                                                    scan=str(scan)))
    wait_dags_parsed(cluster, ["iso_secrets", "iso_scan"])
    cluster.trigger("iso_secrets", "iso1", conf=values)
    assert cluster.wait_run("iso_secrets", "iso1", 300) == "success", cluster.tails()
    cluster.trigger("iso_scan", "iso1")
    assert cluster.wait_run("iso_scan", "iso1", 300) == "success", cluster.tails()

    secret_hosts = {ti["hostname"] for ti in cluster.task_instances("iso_secrets", "iso1")}
    scans = cluster.task_instances("iso_scan", "iso1")
    assert secret_hosts & {ti["hostname"] for ti in scans}, "no scan ran on a worker that ran a secret task"
    total = sum(len(v) for v in values.values())
    for i in range(tasks):
        used = cluster.s3_json(f"runs/iso_secrets/iso1/uses_secret_{i}/attempt-1.ipynb")
        assert _printed(used) == f"{total}\n"  # the kernel had the secrets
    for ti in scans:
        nb = cluster.s3_json(f"runs/iso_scan/iso1/{ti['task_id']}/attempt-1.ipynb")
        assert _printed(nb) == "found: []\n", (ti["hostname"], _printed(nb))
    for worker in cluster.workers.values():  # the scans' kernels were forked by the launcher, not new processes
        assert "forked kernel" in worker.log.read_text(errors="replace"), worker.name


# -- a worker that is not root ---------------------------------------------------------------------------------

PROBE = textwrap.dedent("""\
    import json, os, psutil

    def status(pid):
        with open(f'/proc/{pid}/status') as f:
            return dict(line.rstrip('\\n').split(':\\t', 1) for line in f if ':\\t' in line)

    def attempt(path, size=1 << 20):
        try:
            with open(path, 'rb') as f:
                return f.read(size)
        except OSError as exc:
            return type(exc).__name__

    def opens(path):  # /proc/PID/mem: whether it opens (the access check), not what address 0 holds
        return 'readable' if isinstance(attempt(path, 0), bytes) else attempt(path, 0)

    me = os.getuid()
    ancestors, pid = [], os.getppid()
    while pid > 1 and int(status(pid)['Uid'].split()[0]) == me:  # the launcher, the task process: this user's
        environ = attempt(f'/proc/{pid}/environ')
        ancestors.append({
            'cmdline': open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode()[:300],
            'environ': environ if isinstance(environ, str) else
                       'has AIRFLOW_CONN_WAREHOUSE' if b'AIRFLOW_CONN_WAREHOUSE=' in environ else 'readable',
            'mem': opens(f'/proc/{pid}/mem'),
        })
        pid = int(status(pid)['PPid'])
    holders = []
    for p in os.listdir('/proc'):
        if p.isdigit() and int(p) != os.getpid():
            environ = attempt(f'/proc/{p}/environ')
            if not isinstance(environ, str) and b'hunter2' in environ:
                holders.append(int(p))
    own = psutil.Process()
    print(json.dumps({
        'uid': me, 'ancestors': ancestors, 'holders': holders,
        'own_environ': not isinstance(attempt('/proc/self/environ'), str),
        'own_status': status('self')['Pid'] == str(os.getpid()),
        'own_mem': opens('/proc/self/mem') == 'readable' and not isinstance(attempt('/proc/self/maps'), str),
        'psutil': [isinstance(own.environ(), dict), own.num_fds() > 0, isinstance(own.open_files(), list)],
        'conn_in_env': 'AIRFLOW_CONN_WAREHOUSE' in os.environ,
    }))
""")

RUN_AS_USER = textwrap.dedent("""\
    import json, sys
    mode, notebook, output = sys.argv[1:4]
    if mode == "launcher":
        from airflow_notebook_provider.celery import worker
        worker.start_launcher()  # what a Celery worker does when it starts (README, "Deploying")
    import pendulum
    from airflow.sdk import DAG
    from airflow_notebook_provider.operators.notebook import NotebookOperator
    from tests.helpers import run_dag
    with DAG(f"probe_{mode}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="probe", notebook=notebook, output_notebook=output, env={"MODE": mode})
    print("STATES " + json.dumps({k: r.state for k, r in run_dag(dag).items()}), flush=True)
""")


def _blocked_folders(uid: int, gid: int, paths: list[Path]) -> list[Path]:
    """The outermost folders on the way to ``paths`` that the user cannot enter (e.g. /root, 0700, when this
    interpreter lives under it)."""
    blocked: list[Path] = []
    for path in paths:
        for folder in [*reversed(path.parents), path]:
            st = folder.stat()
            bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
            if not st.st_mode & bit:
                if folder not in blocked:
                    blocked.append(folder)
                break
    return blocked


def as_user(user: str, stash: Path) -> list[str]:
    """A command prefix that runs a command as ``user`` (no capability, no supplementary group), with this
    checkout and its interpreter reachable: a folder on their way that the user cannot enter is replaced, in a
    private mount namespace, by an empty one holding only what is on the way (bind mounts of the originals)."""
    pw = pwd.getpwnam(user)
    needed = sorted({Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.executable, REPO)})
    drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--inh-caps=-all", "--"]
    blocked = _blocked_folders(pw.pw_uid, pw.pw_gid, needed)
    if not blocked:
        return drop
    if not shutil.which("unshare"):
        pytest.skip(f"{blocked} cannot be entered by {user}, and unshare is missing to work around it")
    lines = []
    for i, folder in enumerate(blocked):
        lines += [f'mkdir -p "{stash}/{i}"', f'mount --bind "{folder}" "{stash}/{i}"',
                  f'mount -t tmpfs -o mode=0755,size=1m tmpfs "{folder}"']
        for child in sorted({p.relative_to(folder).parts[0] for p in needed if folder in p.parents}):
            lines += [f'mkdir -p "{folder}/{child}"', f'mount --bind "{stash}/{i}/{child}" "{folder}/{child}"']
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(lines) + ' && exec "$@"',
            "as-user", *drop]


@pytest.fixture
def unprivileged(airflow_db: Path) -> Iterator[tuple[list[str], Path, str]]:
    """A folder owned by ``nobody`` with a copy of the test session's metadata DB, the command prefix that runs as
    ``nobody``, and a marker found in the environment of every process started that way (stopped at the end)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the task as another user")
    folder = Path(tempfile.mkdtemp(prefix="anp-nonroot-", dir="/var/tmp"))
    folder.chmod(0o755)
    stash = Path(tempfile.mkdtemp(prefix="anp-stash-", dir="/var/tmp"))
    home = folder / "home"
    for d in (home, home / "dags", folder / "tmp"):
        d.mkdir()
    with sqlite3.connect(airflow_db / "airflow.db") as src, sqlite3.connect(home / "airflow.db") as dst:
        src.backup(dst)  # with what is still in its write-ahead log
    pw = pwd.getpwnam("nobody")
    for path in (folder, *folder.rglob("*")):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    marker = f"nonroot-{secrets.token_hex(4)}"
    try:
        yield as_user("nobody", stash), folder, marker
    finally:
        deadline = time.monotonic() + 20
        while (left := processes_with_env("ANP_NONROOT", marker, needle="")) and time.monotonic() < deadline:
            time.sleep(0.2)
        for line in left:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(stash, ignore_errors=True)
        assert not left, f"processes outlived the run: {left}"


@pytest.mark.parametrize("mode", ["launcher", "new process"])
def test_a_kernel_of_a_non_root_worker_cannot_read_its_parents(unprivileged: tuple[list[str], Path, str], mode: str) -> None:
    """The denylist keeps ``AIRFLOW_CONN_*`` out of the kernel's environment; a kernel of the same
    (non-root) user must not find it in the task process's or the launcher's environment or memory either, and
    still reads its own /proc/self as usual (psutil, environ, maps)."""
    prefix, folder, marker = unprivileged
    notebook, output = folder / "probe.ipynb", folder / f"out-{mode.replace(' ', '-')}.ipynb"
    _notebook(notebook, PROBE)
    (folder / "run.py").write_text(RUN_AS_USER)
    for path in (notebook, folder / "run.py"):
        os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    home = folder / "home"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.update({
        "HOME": str(folder), "TMPDIR": str(folder / "tmp"), "PYTHONPATH": str(REPO), "ANP_NONROOT": marker,
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_WAREHOUSE": "postgresql://etl:hunter2@db.example.com/warehouse",
    })
    mode_arg = "launcher" if mode == "launcher" else "plain"
    done = subprocess.run([*prefix, sys.executable, str(folder / "run.py"), mode_arg, str(notebook), str(output)],
                          env=env, cwd=folder, capture_output=True, timeout=300, start_new_session=True)
    said = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0 and '"probe": "success"' in said, said[-5000:]
    nb = json.loads(output.read_text())
    facts: dict[str, Any] = json.loads("".join(nb["cells"][0]["outputs"][0]["text"]))
    assert facts["uid"] == pwd.getpwnam("nobody").pw_uid and not facts["conn_in_env"]
    if mode == "launcher":
        assert "forked by the worker's kernel launcher" in said, said[-5000:]
        assert "airflow_notebook_provider.launcher.server" in facts["ancestors"][0]["cmdline"], facts
        assert len(facts["ancestors"]) == 2, facts  # the launcher, then the task process that started it
    else:
        assert len(facts["ancestors"]) == 1, facts  # the task process
    assert [(a["environ"], a["mem"]) for a in facts["ancestors"]] == \
        [("PermissionError", "PermissionError")] * len(facts["ancestors"]), facts
    assert facts["holders"] == [], facts
    assert (facts["own_environ"], facts["own_status"], facts["own_mem"], facts["psutil"]) == \
        (True, True, True, [True, True, True]), facts
