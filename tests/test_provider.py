"""The package is a registered Airflow provider: listed, with its extra link, plugin and config section."""

from __future__ import annotations

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
    assert value.strip() == "30"


def test_output_base_config_is_honoured(airflow_db, tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_db), "AIRFLOW__NOTEBOOK__OUTPUT_BASE": str(tmp_path / "elsewhere")}
    code = "from airflow_notebook_provider.outputs import output_base; print(output_base())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "elsewhere")
