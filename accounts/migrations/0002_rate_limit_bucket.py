from django.db import migrations

# UNLOGGED: a rate-limit bucket is worth nothing after a crash, and skipping the WAL
# keeps the one UPDATE per request cheap. Not a Django model: only accounts.ratelimit
# touches it, with one INSERT ... ON CONFLICT statement.
CREATE_SQL = """
CREATE UNLOGGED TABLE easymemory_rate_bucket (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    allowed boolean NOT NULL,
    updated_at timestamptz NOT NULL
);
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunSQL(CREATE_SQL, reverse_sql="DROP TABLE IF EXISTS easymemory_rate_bucket;")]
