"""The DAGs of the distributed suite, written into the cluster's dags folder next to a copy of ``example_dags``.

``WORK`` is a folder every host sees (outside the workers' private /tmp): the notebooks write marker files there
saying on which worker, under which pid, they are waiting, so that a test knows whom to kill.
"""

from __future__ import annotations

import nbformat

DAGS = '''
from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

WORK = {work!r}
START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG("dist_spread", schedule=None, start_date=START, max_active_tasks=8) as spread:
    # Four 4-second notebooks at once on two workers of concurrency 2: each worker runs some.
    for i in range(4):
        NotebookOperator(task_id=f"spread_{{i}}", notebook=f"{{WORK}}/wait.ipynb",
                         parameters={{"marker": "", "finish_on_try": 1, "seconds": 4}})

with DAG("dist_killed", schedule=None, start_date=START) as killed:
    NotebookOperator(task_id="killed", notebook=f"{{WORK}}/wait.ipynb", checkpoint_interval=1,
                     parameters={{"marker": f"{{WORK}}/killed", "finish_on_try": 2,
                                 "try_number": "{{{{ ti.try_number }}}}"}},
                     retries=1, retry_delay=dt.timedelta(seconds=0))

with DAG("dist_terminated", schedule=None, start_date=START) as terminated:
    NotebookOperator(task_id="terminated", notebook=f"{{WORK}}/wait.ipynb", checkpoint_interval=1,
                     parameters={{"marker": f"{{WORK}}/terminated", "finish_on_try": 99}})

with DAG("dist_local", schedule=None, start_date=START) as local:
    # A local output folder under CeleryExecutor: on the worker's private /tmp, which the api-server cannot read.
    NotebookOperator(task_id="local", notebook=f"{{WORK}}/wait.ipynb",
                     output_notebook="/tmp/notebook-outputs/{{{{ run_id }}}}/local.ipynb",
                     parameters={{"marker": "", "finish_on_try": 1}})
'''

WAIT_NOTEBOOK = [
    "#parameters\nmarker = ''\nfinish_on_try = 1\ntry_number = 1\nseconds = 0",
    "import os, time\nprint('running on', os.environ.get('ANP_HOSTNAME'), flush=True)\ntime.sleep(seconds)",
    # The marker is written after the first checkpoint had a chance to run, so a kill finds one in place.
    "time.sleep(1.5)\nif marker and int(try_number) < int(finish_on_try):\n"
    "    open(marker + '.tmp', 'w').write(os.environ.get('ANP_HOSTNAME', '?') + ' ' + str(os.getppid()))\n"
    "    os.replace(marker + '.tmp', marker)\n    time.sleep(300)",
    "print('finished on try', try_number)",
]


def wait_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    for src in WAIT_NOTEBOOK:
        cell = nbformat.v4.new_code_cell(src)
        if src.startswith("#parameters"):
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    return nb
