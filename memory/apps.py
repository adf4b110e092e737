from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "memory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.metrics import register_scrape_collector
        from memory import warmup  # noqa: F401 - registers the start-up hook
        from memory.metrics import embedding_backlog_metrics
        from memory.search import register_candidate_list
        from memory.window import window_candidates

        register_scrape_collector(embedding_backlog_metrics)
        # Beside the vector list, in its own module (it needs the embedding step's window vectors).
        register_candidate_list("window", window_candidates, needs_query_vector=True)
