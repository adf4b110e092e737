import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

APPEND_ONLY_SQL = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_append_only
  BEFORE UPDATE OR DELETE ON audit_auditevent
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
"""

REVERSE_APPEND_ONLY_SQL = """
DROP TRIGGER IF EXISTS audit_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    operations = [
        # Events recorded before the chain existed cannot be chained; the table is
        # new with this release, so there are none to keep.
        migrations.RunSQL("DELETE FROM audit_auditevent", reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="tenant",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="accounts.tenant",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(model_name="auditevent", name="seq", field=models.BigIntegerField(default=0), preserve_default=False),
        migrations.AddField(model_name="auditevent", name="prev_hash", field=models.CharField(default="", max_length=64), preserve_default=False),
        migrations.AddField(model_name="auditevent", name="hash", field=models.CharField(default="", max_length=64), preserve_default=False),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.UniqueConstraint(fields=("tenant", "seq"), name="audit_tenant_seq", nulls_distinct=False),
        ),
        migrations.RunSQL(APPEND_ONLY_SQL, reverse_sql=REVERSE_APPEND_ONLY_SQL),
    ]
