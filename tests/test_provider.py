"""The package is a registered Airflow provider: listed, with its extra link, plugin and config section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def airflow_cli(*args: str, home: Path) -> str:
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    exe = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_providers_list_shows_the_provider(airflow_db) -> None:
    out = airflow_cli("providers", "list", home=airflow_db)
    assert "airflow-notebook-provider" in out


def test_extra_link_plugin_and_config_are_registered(airflow_db) -> None:
    links = airflow_cli("providers", "links", home=airflow_db)
    assert "airflow_notebook_provider.links.notebook.NotebookOutputLink" in links
    plugins = airflow_cli("plugins", home=airflow_db)
    assert "notebook_viewer" in plugins
    value = airflow_cli("config", "get-value", "notebook", "checkpoint_interval", home=airflow_db)
    assert value.strip().splitlines()[-1] == "30"  # Airflow 3.0 logs INFO lines to stdout before the value


def test_output_base_config_is_honoured(airflow_db, tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_db), "AIRFLOW__NOTEBOOK__OUTPUT_BASE": str(tmp_path / "elsewhere")}
    code = "from airflow_notebook_provider.task.outputs import output_base; print(output_base())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "elsewhere")


def test_gateway_connection_type_and_task_decorator_are_registered(airflow_db) -> None:
    """What a DAG author relies on: the ``jupyter_gateway`` connection type (Admin > Connections) and
    ``@task.notebook``."""
    hooks = json.loads(airflow_cli("providers", "hooks", "-o", "json", home=airflow_db).strip().splitlines()[-1])
    gateway = [h for h in hooks if h["connection_type"] == "jupyter_gateway"]
    assert gateway and gateway[0]["class"] == "airflow_notebook_provider.hooks.kernel.JupyterGatewayHook"
    assert gateway[0]["package_name"] == "airflow-notebook-provider"
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_db)}
    code = "from airflow.sdk import task; print(task.notebook.__module__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "airflow_notebook_provider.decorators.notebook", out.stderr[-2000:]


def test_connection_form_names_the_gateway_fields(airflow_db) -> None:
    """Admin > Connections shows "Gateway URL" and "Auth token" for a ``jupyter_gateway`` connection: Airflow 3.2+
    reads that from the provider info, 3.1 from the hook (where Extra stays visible for the gateway's options)."""
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_db)}
    code = ("import json; from airflow.providers_manager import ProvidersManager; "
            "print(json.dumps(ProvidersManager().field_behaviours.get('jupyter_gateway')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    behaviour = json.loads(out.stdout.strip().splitlines()[-1])
    assert behaviour, out.stderr[-2000:]
    assert behaviour["relabeling"] == {"host": "Gateway URL", "password": "Auth token"}
    assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"])


def test_a_task_process_loading_plugins_does_not_import_the_viewer(airflow_db) -> None:
    """Every task process loads every plugin (Airflow integrates their macros into each template context): the
    viewer plugin must not bring the viewer (FastAPI routes, the auth manager, nbconvert) into every task of every
    DAG. The api-server imports it on the first request to /notebook."""
    code = (
        "import sys\n"
        "try:\n"
        "    from airflow.sdk.plugins_manager import integrate_macros_plugins\n"
        "except ImportError:  # Airflow 3.1\n"
        "    from airflow.plugins_manager import integrate_macros_plugins\n"
        "integrate_macros_plugins()\n"
        "assert 'airflow_notebook_provider.viewer.plugin' in sys.modules, 'the plugin was not loaded'\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('airflow_notebook_provider.viewer.app', "
        "'airflow_notebook_provider.notebook.compare', 'nbconvert', 'airflow.api_fastapi.app')))\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_db)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-2000:]
