"""Where a kernel runs: here (a new process, or forked by the worker's launcher), in another Python environment,
on a Jupyter gateway, or an already running kernel. No Airflow import."""
