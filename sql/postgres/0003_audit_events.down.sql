-- oauthdb migration 0003 (PostgreSQL 15), down: nothing to undo (the up adds
-- nothing here; see 0003_audit_events.up.sql).  A statement, not only
-- comments: libpq reports comments alone as an empty query.
SELECT 1;
