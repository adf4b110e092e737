"""A second vector per embedding row: the memory with the turns before it in its session.

The search list "window" ranks `COALESCE(window_embedding, embedding)`; like the main vector, its
HNSW index is an expression index on the default model's 384 dimensions, limited to rows of that
size (memory/window.py uses the same expression).
"""

import pgvector.django
from django.db import migrations

CREATE = """
CREATE INDEX IF NOT EXISTS memory_embedding_window_hnsw_384
ON memory_memoryembedding USING hnsw ((COALESCE(window_embedding, embedding)::vector(384)) vector_cosine_ops)
WHERE dims = 384
"""
DROP = "DROP INDEX IF EXISTS memory_embedding_window_hnsw_384"


class Migration(migrations.Migration):
    dependencies = [("memory", "0008_fulltext_pending_list_limit")]

    operations = [
        migrations.AddField(
            model_name="memoryembedding",
            name="window_embedding",
            field=pgvector.django.VectorField(blank=True, null=True),
        ),
        migrations.RunSQL(CREATE, reverse_sql=DROP),
    ]
