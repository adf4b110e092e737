from django.db import migrations

# HNSW needs a fixed dimension, and the embedding column holds vectors of any
# model; so the index is on the column cast to the default model's 384
# dimensions, limited to rows of that size. Queries that want it must use the
# same expression (see memory/search.py).
CREATE = """
CREATE INDEX IF NOT EXISTS memory_embedding_hnsw_384
ON memory_memoryembedding USING hnsw ((embedding::vector(384)) vector_cosine_ops)
WHERE dims = 384
"""
DROP = "DROP INDEX IF EXISTS memory_embedding_hnsw_384"


class Migration(migrations.Migration):
    dependencies = [("memory", "0002_memory_history_embedding")]
    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
