-- oauthdb migration 0003 (SQLite): audit rows for the account events that
-- are plain INSERT, UPDATE and DELETE on users and user_providers, written by
-- triggers so that every client records them, with or without the oauthdb
-- extension loaded.  (Session and token events are written by the
-- extension's functions; docs/SQL.md "Audit trail" lists them all.)
--
--   action              when                                       user_id
--   user.created        a users row is inserted                    the user
--   user.deactivated    users.is_active goes from 1 to 0           the user
--   user.reactivated    users.is_active goes from 0 to 1           the user
--   user.deleted        a users row is deleted                     NULL (*)
--   provider.linked     a user_providers row is inserted active,
--                       or its is_active goes from 0 to 1          the user
--   provider.unlinked   user_providers.is_active goes from 1 to 0,
--                       or an active link is deleted while its
--                       user still exists                          the user
--
-- (*) the user is gone, so the foreign key could not hold; details keeps
-- the deleted id.  It is the only place a deleted user's id stays in the
-- log: ON DELETE SET NULL anonymizes the user's other rows, and no details
-- below carries the user's id, email, name or account id at the provider,
-- so nothing links those rows back to the person (docs/SCHEMA.md).
--
-- details holds the ids of the rows involved and the state column that
-- changed, never a secret (no password_hash, no token).  actor is NULL: a
-- trigger cannot know who ran the statement.
--
-- Nothing here calls an extension function, so the triggers work in the
-- plain sqlite3 shell and any program that never loads oauthdb.  The id and
-- timestamp of each row come from the view auth_audit_log_new_id (0001), the
-- one source of audit ids, so these rows and the extension's sort in the
-- order they were written.  (Like every write to auth_audit_log,
-- whose CHECKs call json_valid(), they need trusted_schema on before
-- SQLite 3.45, where the JSON functions are not INNOCUOUS.)

CREATE TRIGGER users_audit_created
AFTER INSERT ON users
FOR EACH ROW
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, details)
  SELECT id, timestamp, NEW.id, 'user.created', '{}'
    FROM auth_audit_log_new_id;
END;

-- The event follows is_active: the CHECK users_deactivated_inactive ties
-- deactivated_at to it, and the new deactivated_at goes into details.  An
-- UPDATE that names either column but leaves is_active as it was writes
-- nothing.
CREATE TRIGGER users_audit_deactivated
AFTER UPDATE OF is_active, deactivated_at ON users
FOR EACH ROW
WHEN OLD.is_active = 1 AND NEW.is_active = 0
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, details)
  SELECT id, timestamp, NEW.id, 'user.deactivated',
         json_object('deactivated_at', NEW.deactivated_at)
    FROM auth_audit_log_new_id;
END;

CREATE TRIGGER users_audit_reactivated
AFTER UPDATE OF is_active, deactivated_at ON users
FOR EACH ROW
WHEN OLD.is_active = 0 AND NEW.is_active = 1
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, details)
  SELECT id, timestamp, NEW.id, 'user.reactivated', '{}'
    FROM auth_audit_log_new_id;
END;

-- AFTER: the row is gone and, with foreign keys on, the user's links,
-- sessions and preferences are gone with it (the cascade runs before AFTER
-- triggers), and their audit rows have user_id NULL.
CREATE TRIGGER users_audit_deleted
AFTER DELETE ON users
FOR EACH ROW
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, details)
  SELECT id, timestamp, NULL, 'user.deleted', json_object('user_id', OLD.id)
    FROM auth_audit_log_new_id;
END;

-- A link inserted inactive (history imported as unlinked) is not a linking.
CREATE TRIGGER user_providers_audit_linked
AFTER INSERT ON user_providers
FOR EACH ROW
WHEN NEW.is_active = 1
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, provider, details)
  SELECT id, timestamp, NEW.user_id, 'provider.linked', NEW.provider,
         json_object('user_provider_id', NEW.id, 'provider', NEW.provider)
    FROM auth_audit_log_new_id;
END;

CREATE TRIGGER user_providers_audit_relinked
AFTER UPDATE OF is_active, unlinked_at ON user_providers
FOR EACH ROW
WHEN OLD.is_active = 0 AND NEW.is_active = 1
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, provider, details)
  SELECT id, timestamp, NEW.user_id, 'provider.linked', NEW.provider,
         json_object('user_provider_id', NEW.id, 'provider', NEW.provider)
    FROM auth_audit_log_new_id;
END;

CREATE TRIGGER user_providers_audit_unlinked
AFTER UPDATE OF is_active, unlinked_at ON user_providers
FOR EACH ROW
WHEN OLD.is_active = 1 AND NEW.is_active = 0
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, provider, details)
  SELECT id, timestamp, NEW.user_id, 'provider.unlinked', NEW.provider,
         json_object('user_provider_id', NEW.id, 'provider', NEW.provider,
                     'unlinked_at', NEW.unlinked_at)
    FROM auth_audit_log_new_id;
END;

-- Deleting an active link unlinks it too.  Not when the user is gone: a
-- deleted user's links go by cascade, and user.deleted already says so
-- (the row could not name the user anyway).
CREATE TRIGGER user_providers_audit_deleted
AFTER DELETE ON user_providers
FOR EACH ROW
WHEN OLD.is_active = 1 AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id)
BEGIN
  INSERT INTO auth_audit_log (id, timestamp, user_id, action, provider, details)
  SELECT id, timestamp, OLD.user_id, 'provider.unlinked', OLD.provider,
         json_object('user_provider_id', OLD.id, 'provider', OLD.provider,
                     'link_deleted', json('true'))
    FROM auth_audit_log_new_id;
END;
