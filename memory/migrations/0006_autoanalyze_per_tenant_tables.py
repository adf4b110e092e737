"""Analyze the memory tables after 1 % of their rows change, not PostgreSQL's default 10 %.

Tenant-scoped queries are planned from the statistics of `tenant_id`: until the table is
analyzed again, a tenant that is new (or grew fast) is estimated at one row, and the planner
picks plans that are right for one row and wrong for thousands (measured: a session-neighbour
lookup 22 ms instead of under 1 ms, for a new 1,000-row tenant in a 190,000-row table). With the
default 10 % a 190k-row table would wait for 19,000 changes; this waits for about 1,950 (50 + 1 %).
"""

from django.db import migrations

TABLES = ("memory_memory", "memory_memoryembedding")
SETTINGS = "autovacuum_analyze_scale_factor = 0.01"


class Migration(migrations.Migration):
    dependencies = [("memory", "0005_term_stats")]

    operations = [
        migrations.RunSQL(
            sql=[f"ALTER TABLE {table} SET ({SETTINGS})" for table in TABLES],
            reverse_sql=[
                f"ALTER TABLE {table} RESET (autovacuum_analyze_scale_factor)"
                for table in TABLES
            ],
        )
    ]
