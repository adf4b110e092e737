# The Celery app must be loaded in every process (web server, CLI, tests), or `shared_task`s
# bind to Celery's default app and `.delay()` publishes to its default broker, not ours.
from config.celery import app as celery_app

__all__ = ["celery_app"]
