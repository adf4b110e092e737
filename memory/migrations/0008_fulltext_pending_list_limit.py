"""Keep the full-text index's pending list short: 256 kB instead of PostgreSQL's 4 MB.

A GIN index with fast update (the default) queues new rows' entries in an unsorted pending list,
and every full-text search of every tenant scans that list until it is merged into the index:
by VACUUM, by autoanalyze, or when it outgrows `gin_pending_list_limit`. A manual ANALYZE does not
merge it, and on a large table autoanalyze waits for thousands of changes, so a tenant that had
just grown searched markedly slower, and so did every other tenant (docs/benchmarks.md). With
256 kB the list holds a few hundred rows at most; the write that overflows it merges them (a
batch, as before, only smaller).
"""

from django.db import migrations

INDEX = "memory_search_vector"


class Migration(migrations.Migration):
    dependencies = [("memory", "0007_memory_bulk_job")]

    operations = [
        migrations.RunSQL(
            sql=f"ALTER INDEX {INDEX} SET (gin_pending_list_limit = 256)",
            reverse_sql=f"ALTER INDEX {INDEX} RESET (gin_pending_list_limit)",
        )
    ]
