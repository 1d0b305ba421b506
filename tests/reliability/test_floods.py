"""Output floods: 100 MB of stdout, a storm of tiny IOPub messages, a 50 MB image. The task completes, the
notebook keeps every byte, and the task log stays usable (each cell's output is cut at ``log_output_limit`` with
a note saying so)."""

from __future__ import annotations

import json
import time

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import code_cells, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
MB = 2**20

STDOUT_100MB = "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(line)"
ONE_LINE_20MB = "import sys\nfor _ in range(20 * 1024):\n    sys.stdout.write('y' * 1024)"
STORM = "for i in range(20000):\n    print(i, flush=True)"
IMAGE_50MB = (
    "import base64, os\nfrom IPython.display import display\n"
    "png = b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom(50 * 2**20)\n"
    "display({'image/png': base64.b64encode(png).decode()}, raw=True)"
)


def test_floods_complete_with_everything_in_the_notebook_and_a_usable_log(airflow_db, make_notebook, own_kernels, capfd) -> None:
    nb = make_notebook(STDOUT_100MB, ONE_LINE_20MB, STORM, IMAGE_50MB, "print('after the floods')")
    with DAG(dag_id="rel_floods", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), log_output_limit=10_000, cell_timeout=300)
    t0 = time.monotonic()
    res = run_dag(dag)
    elapsed = time.monotonic() - t0
    log = "".join(capfd.readouterr())
    assert res["nb"].state == "success"
    out = read_nb(res["nb"].xcom["output_notebook"])
    cells = code_cells(out)
    assert len(stream_text(cells[0])) == 100 * MB  # the notebook keeps it all
    assert len(stream_text(cells[1])) == 20 * MB
    assert stream_text(cells[2]).split() == [str(i) for i in range(20000)]
    image = [o for o in cells[3]["outputs"] if o["output_type"] == "display_data"][0]["data"]["image/png"]
    assert len("".join(image)) >= 50 * MB * 4 // 3
    assert stream_text(cells[4]) == "after the floods\n"

    assert log.count("truncated in the log after") == 3  # one note per flooding cell
    assert "[stdout] after the floods" in log
    assert len(log) < 2 * MB, f"the task log grew to {len(log)} characters"
    print(f"FLOODS: 100 MB stdout + 20 MB line + 20000 messages + 50 MB image in {elapsed:.1f} s; "
          f"notebook {len(json.dumps(out)) / MB:.0f} MB, task log {len(log) / 1024:.0f} KiB")
    assert not own_kernels()


WIDGET_SETUP = "import ipywidgets as widgets\nfrom IPython.display import clear_output, display\nout = widgets.Output()\ndisplay(out)"
WIDGET_CELL = "with out:\n    for i in range({n}):\n        print(i)\n        clear_output(wait=True)\n    print('end')"


@pytest.mark.timeout(300)
def test_output_widget_updates_never_stall_a_cell(airflow_db, make_notebook, own_kernels) -> None:
    """The flake once seen in Output.ipynb: a cell "took exactly cell_timeout, then succeeded".

    nbclient answers Output-widget messages on the shell channel while it awaits the cell's reply there, and the
    reply's wake-up can be lost (pyzmq, edge-triggered ZMQ fd): nbclient then saw it only when its poll timed out,
    after cell_timeout, or never without one. Without the fix about one such cell in seven stalls; here there is
    no cell_timeout, so a stall hangs this test until pytest-timeout fails it.
    """
    cells = [WIDGET_CELL.format(n=n) for n in (1, 2, 3, 5, 8, 13, 1, 1, 2, 2) * 6]
    nb = make_notebook(WIDGET_SETUP, *cells)
    with DAG(dag_id="rel_widgets", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), cell_timeout=None)
    t0 = time.monotonic()
    res = run_dag(dag)
    assert res["nb"].state == "success"
    out = read_nb(res["nb"].xcom["output_notebook"])
    assert {c["metadata"]["papermill"]["status"] for c in out["cells"]} == {"completed"}
    slowest = max(c["metadata"]["papermill"]["duration"] for c in out["cells"])
    print(f"WIDGETS: {len(cells)} Output-widget cells in {time.monotonic() - t0:.1f} s, slowest cell {slowest:.2f} s")
    assert not own_kernels()
