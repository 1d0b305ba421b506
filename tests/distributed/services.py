"""A distributed Airflow on one machine: PostgreSQL, Redis and moto's S3 on 127.0.0.1, an api-server, a scheduler, a
dag-processor and Celery workers, each worker with its own temporary folder, HOME, host name and (when ``unshare``
works) a private ``/tmp`` and UTS namespace, as on separate hosts. Used by ``tests/distributed`` and ``bench/soak``.

Every process runs in a session of its own and is stopped by process group (SIGTERM, then SIGKILL), bounded in time.
PostgreSQL refuses to run as root, so it runs as the ``postgres`` user (or ``nobody``) on a data folder it owns.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import MotoServer, free_port, s3_client, start_moto

REPO = Path(__file__).resolve().parents[2]
PY = Path(sys.executable)
AIRFLOW = str(PY.with_name("airflow"))
BUCKET = "notebooks"


class Unavailable(RuntimeError):
    """A service this suite needs is not installed (and could not be): the suite skips."""


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise Unavailable(f"PostgreSQL's {name} not found (apt-get install postgresql)")
    return found


def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Signal ``proc``'s process group, wait up to ``timeout`` s, then SIGKILL the group (it may hold children)."""
    for s, wait in ((sig, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, s)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if s == sig:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what the leader left behind
            except (ProcessLookupError, PermissionError):
                pass
        return


def _wait(what: str, probe: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes] | None = None,
          log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}\n"
                               f"{log.read_text(errors='replace')[-3000:] if log else ''}")
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


@dataclass
class Postgres:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        _stop_group(self.proc, signal.SIGINT, 20)  # SIGINT: PostgreSQL's fast shutdown


def start_postgres(folder: Path) -> Postgres:
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    user = "postgres"
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        user, pw = "nobody", pwd.getpwnam("nobody")
    data = folder / "pgdata"
    data.mkdir(parents=True)
    as_user: dict[str, Any] = {"user": pw.pw_uid, "group": pw.pw_gid} if os.geteuid() == 0 else {}
    if as_user:
        os.chown(data, pw.pw_uid, pw.pw_gid)
        os.chmod(folder, 0o755)
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "HOME": str(data)}
    done = subprocess.run([initdb, "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--no-sync"],
                          env=env, capture_output=True, timeout=120, cwd=data, **as_user)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stdout.decode()}{done.stderr.decode()}")
    port = free_port()
    log = folder / "postgres.log"
    proc = subprocess.Popen(
        [postgres, "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data),
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, cwd=data, **as_user,
    )
    pg = Postgres(port, proc, log)
    try:
        import psycopg2

        def create() -> bool:
            con = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="postgres", connect_timeout=3)
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("CREATE DATABASE airflow")
            con.close()
            return True

        _wait("PostgreSQL accepts connections", create, 60, proc, log)
    except BaseException:
        pg.stop()
        raise
    return pg


@dataclass
class Redis:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop_group(self.proc, signal.SIGTERM, 10)


def start_redis(folder: Path) -> Redis:
    exe = shutil.which("redis-server")
    if not exe:
        raise Unavailable("redis-server not found (apt-get install redis-server)")
    port = free_port()
    log = folder / "redis.log"
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    r = Redis(port, proc)
    try:
        import redis

        _wait("Redis answers", lambda: redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping(), 30, proc, log)
    except BaseException:
        r.stop()
        raise
    return r


def visible_under_tmp() -> list[Path]:
    """Folders under /tmp the workers must still see behind their private /tmp: this checkout and its virtualenv
    (a CI clone often lives in /tmp)."""
    tmp = Path("/tmp").resolve()
    keep: list[Path] = []
    for path in sorted({REPO.resolve(), Path(sys.prefix).resolve()}):
        if tmp in path.parents and not any(k in path.parents for k in keep):
            keep.append(path)
    return keep


def private_tmp_script(name: str, stash: Path) -> str:
    """A shell script run under ``unshare --mount --uts``: the worker's host name, ``$TMPDIR`` mounted on /tmp, and
    the folders of ``visible_under_tmp`` mounted back where they were (through ``stash``, outside /tmp)."""
    lines = [f"hostname {name}"]
    keep = visible_under_tmp()
    for i, path in enumerate(keep):
        lines.append(f'mkdir -p "{stash}/{i}" && mount --bind "{path}" "{stash}/{i}"')
    lines.append('mount --bind "$TMPDIR" /tmp')
    for i, path in enumerate(keep):
        lines.append(f'mkdir -p "{path}" && mount --bind "{stash}/{i}" "{path}"')
    return " && ".join(lines) + ' && exec "$@"'


def unshare_works() -> bool:
    """Whether a worker can get a private /tmp and host name (``unshare --mount --uts`` and a bind mount)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = tempfile.mkdtemp(prefix="anp-unshare-", dir="/var/tmp")
    try:
        done = subprocess.run(["unshare", "--mount", "--uts", "sh", "-c",
                               f"hostname anp-probe && mount --bind {probe} /tmp && touch /tmp/ok"],
                              capture_output=True, timeout=20)
        return done.returncode == 0 and Path(probe, "ok").exists()
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@dataclass
class Worker:
    name: str
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def tmp(self) -> Path:
        return self.folder / "tmp"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"


@dataclass
class Cluster:
    """The running Airflow; ``base`` holds every folder (outside /tmp: workers get their own /tmp)."""

    base: Path
    port: int
    username: str
    password: str
    env: dict[str, str]
    postgres: Postgres
    redis: Redis
    moto: MotoServer
    private_tmp: bool
    workers: dict[str, Worker] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dags(self) -> Path:
        return self.base / "dags"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    # -- processes ----------------------------------------------------------------------------------------------

    def _start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        with (self.base / f"{name}.log").open("ab") as out:
            return subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start_worker(self, name: str, concurrency: int = 2) -> Worker:
        """Start (or restart) Celery worker ``name``: own AIRFLOW_HOME, HOME, TMPDIR, host name and pid file."""
        worker = self.workers.get(name) or Worker(name, self.base / name)
        for d in (worker.folder, worker.tmp, worker.home, worker.folder / "airflow-home"):
            d.mkdir(parents=True, exist_ok=True)
        env = {
            **self.env,
            "ANP_HOSTNAME": name,
            "HOME": str(worker.home),
            "TMPDIR": str(worker.tmp),
            "AIRFLOW_HOME": str(worker.folder / "airflow-home"),
        }
        cmd = [AIRFLOW, "celery", "worker", "--concurrency", str(concurrency), "--skip-serve-logs",
               "--pid", str(worker.folder / "worker.pid"), "--celery-hostname", f"{name}@{name}",
               "--without-mingle", "--without-gossip"]
        if self.private_tmp:  # a private /tmp and host name, as on another machine
            cmd = ["unshare", "--mount", "--uts", "sh", "-c", private_tmp_script(name, worker.folder / "keep"),
                   "worker", *cmd]
        seen = worker.log.stat().st_size if worker.log.exists() else 0  # a restart appends to the log
        with worker.log.open("ab") as out:
            worker.proc = subprocess.Popen(cmd, env=env, cwd=worker.folder, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        self.workers[name] = worker
        _wait(f"worker {name} is ready", lambda: b"ready." in worker.log.read_bytes()[seen:], 120, worker.proc,
              worker.log)
        return worker

    def kill_worker(self, name: str, sig: int = signal.SIGKILL, timeout: float = 60) -> None:
        """Signal worker ``name``'s whole process group (as a host or container going away) and wait for it."""
        worker = self.workers[name]
        assert worker.proc is not None
        os.killpg(worker.proc.pid, sig)
        try:
            worker.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(worker.proc, signal.SIGKILL, 0)
        worker.proc = None

    def stop(self) -> None:
        procs = [w.proc for w in self.workers.values() if w.proc is not None] + list(self.procs.values())
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs:
            _stop_group(proc, signal.SIGKILL, 0)
        for stop in (self.moto.stop, self.redis.stop, self.postgres.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop the others
                pass

    def check_alive(self) -> None:
        for name, proc in [*self.procs.items(), *((w.name, w.proc) for w in self.workers.values() if w.proc)]:
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{self.tails()}")

    def tails(self) -> str:
        logs = sorted(self.base.glob("*.log")) + [w.log for w in self.workers.values()]
        return "\n".join(f"--- {p.name} ({p.parent.name}) ---\n{p.read_text(errors='replace')[-3000:]}"
                         for p in logs if p.exists())

    # -- REST and S3 --------------------------------------------------------------------------------------------

    def token(self) -> str:
        """The real login: user name and password against Airflow's auth manager, for a JWT."""
        body = json.dumps({"username": self.username, "password": self.password}).encode()
        req = urllib.request.Request(f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as resp:
            return str(json.loads(resp.read())["access_token"])

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                token: str | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token or self.token()}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, data = self.request(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {data[:2000]!r}"
        return json.loads(data) if data else None

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        # A logical date (now) so that templates using {{ ds }} render, as in a scheduled run.
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": now,
                                                             "conf": conf or {}})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
                    ["task_instances"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float, states: tuple[str, ...] = ("success", "failed")) -> str:
        def done() -> str | None:
            self.check_alive()
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in states else None

        return str(_wait(f"run {dag_id}/{run_id} ends", done, timeout))

    def s3(self) -> Any:
        return s3_client(self.moto.endpoint)

    def s3_keys(self, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def s3_json(self, key: str) -> Any:
        return json.loads(self.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())


def start_cluster(dags: Path | None = None, workers: tuple[str, ...] = ("worker-a", "worker-b"),
                  concurrency: int = 2, extra_env: dict[str, str] | None = None, boto_endpoint: bool = False) -> Cluster:
    """PostgreSQL, Redis, moto, then the Airflow components and ``workers``; raises ``Unavailable`` to skip.

    ``boto_endpoint``: point boto3's default S3 endpoint at moto too (``AWS_ENDPOINT_URL_S3``), for code that uses
    no Airflow connection (papermill).
    """
    base = Path(tempfile.mkdtemp(prefix="anp-dist-", dir="/var/tmp"))
    base.chmod(0o755)  # PostgreSQL's user must reach its data folder
    started: list[Callable[[], None]] = []
    try:
        postgres = start_postgres(base / "pg")
        started.append(postgres.stop)
        redis_ = start_redis(base)
        started.append(redis_.stop)
        moto = start_moto(base)
        started.append(moto.stop)
    except BaseException:
        for stop in reversed(started):
            stop()
        raise
    s3_client(moto.endpoint).create_bucket(Bucket=BUCKET)
    port = free_port()
    password = secrets.token_urlsafe(12)
    (base / "passwords.json").write_text(json.dumps({"analyst": password}))
    for d in ("dags", "logs", "home"):
        (base / d).mkdir()
    if dags is not None:
        shutil.copytree(dags, base / "dags", dirs_exist_ok=True)
    from cryptography.fernet import Fernet

    db = postgres.url
    s3_conn = json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                          "extra": {"endpoint_url": moto.endpoint, "region_name": "us-east-1"}})
    # Not this test process's Airflow settings, nor the task context that dag.test() runs of other tests leave in it.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW_CTX_"))}
    env.update({
        "AIRFLOW_HOME": str(base / "home"),
        "PYTHONPATH": str(REPO),
        "PATH": f"{PY.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(base / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.distributed.hostname.from_env",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "analyst:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(base / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": redis_.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db,
        # What README's "Deploying" asks of Celery workers: the engine preloaded, kernels forked by a launcher.
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_notebook_provider.celery.worker.CELERY_CONFIG",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(base / "logs"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
        # The connection named in the URL (Airflow's ObjectStoragePath reads it from there): the provider has no
        # connection option for output_base; without it the workers would use boto3's default credentials.
        "AIRFLOW__NOTEBOOK__OUTPUT_BASE": f"s3://aws_default@{BUCKET}/runs",
        "AIRFLOW__NOTEBOOK__CHECKPOINT_INTERVAL": "1",
        "AIRFLOW_CONN_AWS_DEFAULT": s3_conn,
        "AIRFLOW_CONN_NOTEBOOK_S3": s3_conn,  # example_notebook_s3's connection
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        **({"AWS_ENDPOINT_URL_S3": moto.endpoint} if boto_endpoint else {}),
        **(extra_env or {}),
    })
    cluster = Cluster(base=base, port=port, username="analyst", password=password, env=env, postgres=postgres,
                      redis=redis_, moto=moto, private_tmp=unshare_works())
    try:
        migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, cwd=base, capture_output=True, timeout=300,
                                 start_new_session=True)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout.decode()[-3000:]}"
                               f"{migrate.stderr.decode()[-3000:]}")
        server_env = {**env, "ANP_HOSTNAME": "api-server-host"}
        cluster.procs["api-server"] = cluster._start(
            "api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], server_env, base)
        cluster.procs["scheduler"] = cluster._start("scheduler", [AIRFLOW, "scheduler"], server_env, base)
        cluster.procs["dag-processor"] = cluster._start("dag-processor", [AIRFLOW, "dag-processor"], server_env, base)
        for name in workers:
            cluster.start_worker(name, concurrency)

        def healthy() -> bool:
            cluster.check_alive()
            with urllib.request.urlopen(f"{cluster.url}/api/v2/monitor/health", timeout=5) as resp:
                return resp.status == 200

        _wait("the api-server answers", healthy, 120)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_dags_parsed(cluster: Cluster, dag_ids: list[str], timeout: float = 120) -> None:
    def parsed() -> bool:
        cluster.check_alive()
        have = {d["dag_id"] for d in cluster.api("GET", "/api/v2/dags?limit=200")["dags"]}
        return set(dag_ids) <= have

    _wait(f"DAGs {dag_ids} are parsed", parsed, timeout)


def _tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (by parent pid, from /proc)."""
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def rss_kb(pid: int) -> int:
    """Memory of ``pid`` and its descendants, in kB (0 if gone): the sum of their PSS (proportional set size), so
    that pages a forked pool child shares with its parent count once."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used by ``pid`` and its descendants, living or ended: each living process's own time
    plus that of the children it has reaped (a task process and its kernel, once the task's supervisor waited for
    them), so nothing is counted twice."""
    ticks = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")
