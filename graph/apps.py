from django.apps import AppConfig


class GraphConfig(AppConfig):
    name = "graph"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The graph plugs into memory's extension points; memory never imports the graph.
        from graph.ranking import superseded_adjustment
        from graph.selectors import graph_candidates, graph_stats_for
        from graph.services import graph_enrichment_hook, graph_memories_deleting, graph_reconcile
        from memory.adjustments import register_score_adjustment
        from memory.enrichment import register_deletion_hook, register_enrichment_hook, register_reconcile_step
        from memory.search import register_candidate_list
        from memory.selectors import register_stats_provider

        register_enrichment_hook(graph_enrichment_hook)
        register_deletion_hook(graph_memories_deleting)
        register_reconcile_step("graph extraction", graph_reconcile)
        register_candidate_list("graph", graph_candidates)
        register_score_adjustment("superseded", superseded_adjustment)
        register_stats_provider("graph", graph_stats_for)  # the graph's counts and extraction failures
