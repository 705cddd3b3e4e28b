-- oauthdb migration 0002 (SQLite), down: removes the seeded services.
-- Fails (FOREIGN KEY constraint failed, ON DELETE RESTRICT) while a
-- user_providers row still links to one of them: unlink those first.
DELETE FROM service_configs
 WHERE id IN ('01941f29-7c00-7000-8000-000000000001',
              '01941f29-7c00-7000-8000-000000000002');
