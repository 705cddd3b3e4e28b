-- oauthdb migration 0004 (SQLite), down: nothing to undo (see the up file).
SELECT 1;
