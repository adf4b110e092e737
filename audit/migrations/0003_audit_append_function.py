from django.db import migrations

# One round trip per audit event: lock the chain, read its head, hash, insert.
# The hash is SHA-256(prev_hash || canonical JSON), the canonical JSON being built
# by audit.chain in Python, which is also what `easymemory audit verify` recomputes.
# In READ COMMITTED each statement of a volatile function takes a new snapshot, so
# the head is read after the lock is held and sees the event committed just before.
CREATE_SQL = """
CREATE FUNCTION audit_append(
    p_lock_class integer, p_async boolean, p_content text, p_tenant uuid, p_created_at timestamptz,
    p_actor_type text, p_actor_id text, p_action text, p_target_type text, p_target_id text,
    p_outcome text, p_request_id text, p_client_addr text, p_user_agent text, p_detail jsonb
) RETURNS TABLE(out_id bigint, out_seq bigint, out_prev_hash text, out_hash text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq bigint;
    v_prev text;
    v_hash text;
    v_id bigint;
BEGIN
    IF p_async THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock_class, hashtext(coalesce(p_tenant::text, '-')));
    IF p_tenant IS NULL THEN
        SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_auditevent e
        WHERE e.tenant_id IS NULL ORDER BY e.seq DESC LIMIT 1;
    ELSE
        SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_auditevent e
        WHERE e.tenant_id = p_tenant ORDER BY e.seq DESC LIMIT 1;
    END IF;
    IF v_seq IS NULL THEN
        v_seq := 0;
        v_prev := repeat('0', 64);
    END IF;
    v_hash := encode(sha256(convert_to(v_prev || p_content, 'UTF8')), 'hex');
    INSERT INTO audit_auditevent (
        tenant_id, seq, created_at, actor_type, actor_id, action, target_type, target_id,
        outcome, request_id, client_addr, user_agent, detail, prev_hash, hash
    ) VALUES (
        p_tenant, v_seq + 1, p_created_at, p_actor_type, p_actor_id, p_action, p_target_type, p_target_id,
        p_outcome, p_request_id, p_client_addr, p_user_agent, p_detail, v_prev, v_hash
    ) RETURNING audit_auditevent.id INTO v_id;
    RETURN QUERY SELECT v_id, v_seq + 1, v_prev, v_hash;
END;
$$;
"""

REVERSE_SQL = """
DROP FUNCTION IF EXISTS audit_append(integer, boolean, text, uuid, timestamptz, text, text, text, text, text,
                                     text, text, text, text, jsonb);
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_hash_chain_append_only")]

    operations = [migrations.RunSQL(CREATE_SQL, reverse_sql=REVERSE_SQL)]
