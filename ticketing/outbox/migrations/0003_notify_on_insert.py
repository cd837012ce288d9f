"""An outbox insert notifies the relay process (LISTEN outbox_pending) when it commits."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION outbox_notify_pending() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('outbox_pending', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_notify_pending AFTER INSERT ON outbox_outboxmessage
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_pending();
"""
DROP = """
DROP TRIGGER IF EXISTS outbox_notify_pending ON outbox_outboxmessage;
DROP FUNCTION IF EXISTS outbox_notify_pending();
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0002_dead_letters")]

    operations = [migrations.RunSQL(CREATE, DROP)]
