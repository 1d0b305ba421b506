"""The ``[notebook]`` options are declared once (``airflow_notebook_provider.config.OPTIONS``) and read through it.

- Airflow's view (``get_provider_info()["config"]``) and the documentation's configuration page list exactly the
  declared options, with the declared defaults.
- Every reader gives the declared default when the option is unset, and reads ``AIRFLOW__NOTEBOOK__<NAME>``.
- A value that is not a number fails the task with a message naming the option and the fix.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_notebook_provider import config
from airflow_notebook_provider.notebook.errors import NotebookConfigError
from tests.docs_site import Tables
from tests.helpers import run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")
NAMES = [o.name for o in config.OPTIONS]


@pytest.fixture
def unset(monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> None:
    """No ``[notebook]`` option set in the environment (conftest sets viewer_allowed_locations for the viewer)."""
    for o in config.OPTIONS:
        monkeypatch.delenv(o.env_var, raising=False)
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)


def test_provider_info_declares_exactly_the_options_with_their_defaults() -> None:
    from airflow_notebook_provider.get_provider_info import get_provider_info

    section = get_provider_info()["config"]
    assert list(section) == ["notebook"]
    options = section["notebook"]["options"]
    assert list(options) == NAMES
    for o in config.OPTIONS:
        assert options[o.name]["default"] == o.default_text
        assert options[o.name]["type"] == o.type
        assert options[o.name]["description"] == o.description
    assert options["checkpoint_interval"]["default"] == "30"  # Airflow holds strings: not "30.0"


def test_configuration_page_lists_exactly_the_options_with_their_defaults(site: Path) -> None:
    page = (site / "configuration.html").read_text(encoding="utf-8")
    parser = Tables()
    parser.feed(page)
    tables = [t for t in parser.tables if t and [c[0] for c in t[0]] == ["Option", "Default", "Type"]]
    assert len(tables) == 1, "configuration.html has no generated table of options"
    shown = {row[0][1][0]: (row[1][1][0] if row[1][1] else row[1][0]) for row in tables[0][1:]}
    assert shown == {o.name: o.default_text or "empty" for o in config.OPTIONS}
    for o in config.OPTIONS:
        assert o.env_var in page


@pytest.mark.parametrize("name", NAMES)
def test_an_unset_option_reads_as_its_declared_default(unset: None, name: str) -> None:
    assert config.get(name) == config.option(name).default


def test_each_module_reader_gives_the_declared_default(unset: None, airflow_db: Path) -> None:
    from airflow_notebook_provider.hooks.notebook import NotebookHook
    from airflow_notebook_provider.links.notebook import viewer_base_url
    from airflow_notebook_provider.operators.notebook import env_denylist
    from airflow_notebook_provider.task import outputs
    from airflow_notebook_provider.viewer import safe_read
    from airflow_notebook_provider.viewer.page import cache_budget

    assert NotebookHook().retry_seconds == 60.0
    assert outputs.output_base() == str(airflow_db / "notebook_outputs")
    assert env_denylist() == ("AIRFLOW_CONN_*", "AIRFLOW_VAR_*", "AIRFLOW__*")
    assert [r.prefix for r in safe_read.allowed_roots()] == [str(Path(outputs.output_base()).resolve())]
    assert (safe_read.max_bytes(), safe_read.read_timeout(), cache_budget()) == (104857600, 10.0, 67108864)
    assert viewer_base_url() == ""


SAMPLES: dict[str, tuple[str, Any]] = {
    "output_base": ("s3://bucket/runs", "s3://bucket/runs"),
    "checkpoint_interval": ("2.5", 2.5),
    "storage_retry_seconds": ("4", 4.0),
    "kernel_env_denylist": ("", ""),  # set but empty: no denylist, not the default
    "viewer_allowed_locations": ("/data/a,s3://b", "/data/a,s3://b"),
    "viewer_max_bytes": ("1e6", 1000000),
    "viewer_read_timeout": ("3", 3.0),
    "viewer_cache_bytes": ("0", 0),
    "viewer_base_url": ("https://airflow.example.com", "https://airflow.example.com"),
    "cell_resources": ("off", "off"),
}


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLES) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_environment_variable_is_read(unset: None, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    text, expected = SAMPLES[name]
    monkeypatch.setenv(config.option(name).env_var, text)
    value = config.get(name)
    assert (value, type(value)) == (expected, type(expected))


@pytest.mark.parametrize(("text", "expected"), [("off", False), ("On", True), (" no ", False), ("1", True)])
def test_a_switch_reads_on_and_off(unset: None, monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__CELL_RESOURCES", text)
    assert config.get_switch("cell_resources") is expected


def test_a_switch_that_is_neither_names_the_fix(unset: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__CELL_RESOURCES", "sometimes")
    with pytest.raises(NotebookConfigError) as err:
        config.get_switch("cell_resources")
    assert "cell_resources" in str(err.value) and "on or off" in str(err.value)
    assert "AIRFLOW__NOTEBOOK__CELL_RESOURCES" in str(err.value)


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("storage_retry_seconds", "1 minute", "is not a number"),
    ("checkpoint_interval", "nan", "is not a number"),
    ("storage_retry_seconds", "-1", "is negative"),
    ("viewer_max_bytes", "1.5", "is not a whole number"),
])
def test_a_bad_number_names_the_option_and_the_fix(unset: None, monkeypatch: pytest.MonkeyPatch, name: str,
                                                     text: str, problem: str) -> None:
    monkeypatch.setenv(config.option(name).env_var, text)
    with pytest.raises(ValueError, match=rf'\[notebook\] {name} = "{text}" {problem}; set it to'):
        config.get(name)


def test_a_bad_viewer_limit_keeps_the_declared_limit(unset: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The viewer never lifts a limit on a typo: it keeps the default (and logs why) rather than failing pages."""
    from airflow_notebook_provider.viewer import safe_read

    monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_READ_TIMEOUT", "ten")
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_MAX_BYTES", "0")
    assert (safe_read.read_timeout(), safe_read.max_bytes()) == (10.0, 104857600)


def test_a_task_fails_naming_a_bad_checkpoint_interval(unset: None, monkeypatch: pytest.MonkeyPatch, make_notebook,
                                                       caplog: pytest.LogCaptureFixture, capfd) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.notebook import NotebookOperator

    monkeypatch.setenv("AIRFLOW__NOTEBOOK__CHECKPOINT_INTERVAL", "abc")
    nb = make_notebook("print('ran')")
    with DAG(dag_id="t_config_bad_interval", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), retries=1, retry_delay=timedelta(0))
    with caplog.at_level(logging.INFO):
        res = run_dag(dag)
    log = "".join(capfd.readouterr()) + "\n".join(r.getMessage() for r in caplog.records)
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 1)  # a setting a retry cannot fix: no retry
    assert ('[notebook] checkpoint_interval = "abc" is not a number; set it to seconds such as 30 '
            "(in airflow.cfg or AIRFLOW__NOTEBOOK__CHECKPOINT_INTERVAL)") in log
