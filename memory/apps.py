from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "memory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.metrics import register_scrape_collector
        from memory import warmup  # noqa: F401 - registers the start-up hook
        from memory.metrics import embedding_backlog_metrics

        register_scrape_collector(embedding_backlog_metrics)
