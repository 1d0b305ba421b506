"""The Celery worker's main process: what it does once for all its notebook tasks (preload, kernel launcher)."""
