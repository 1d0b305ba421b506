"""The notebook viewer, in the api-server only: the Airflow plugin, its FastAPI app (``app``), its pages, and how
it finds and safely reads what tasks wrote. Task code never imports it."""
