"""The kernel launcher, a process of its own started by a Celery worker: the server (``server``) and what each
child it forks does (``child``). Standard library only: every kernel it forks carries its imports."""
