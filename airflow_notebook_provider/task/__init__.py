"""One attempt on a worker, in the task process: where its output goes, the watch on its supervisor, its
lineage. Imports Airflow's Task SDK, the engine and the notebook layer; never the viewer."""
