# Load the Celery app with Django so that tasks are always sent with this
# project's configuration (broker, queue), never a default app's.
from config.celery import app as celery_app

__all__ = ["celery_app"]
