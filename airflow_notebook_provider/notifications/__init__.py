"""Notifications sent when a notebook task's attempt ends: ``NotebookNotifier`` (email and/or webhook).

Runs where Airflow runs a task's callbacks (the **task process**, after the attempt) and, for a DAG's deadline alert,
in the **triggerer**. It reads what the attempt left (XCom, the output notebook, the HTML report) and never the
viewer.
"""
