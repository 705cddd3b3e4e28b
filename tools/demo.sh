#!/bin/bash
# demo.sh BUILD: the README's first command. Creates a dev database and a
# keyring under BUILD/demo, then, at the sqlite3 prompt with the extension
# loaded: migrates, stores Google tokens sealed, reads them back, creates and
# validates a session, asks which tokens are due for refresh, and rotates
# the key. Every step prints what it did.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
demo=$build/demo
rm -rf "$demo"
mkdir -p "$demo"
chmod 700 "$demo"
export OAUTHDB_KEYRING=$demo/keyring
db=$demo/dev.db
tool=$build/oauthdb

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "oauthdb keygen: a keyring with one primary key (mode 0600)"
"$tool" keygen "$OAUTHDB_KEYRING"
ls -l "$OAUTHDB_KEYRING" | awk '{print $1, $NF}'

say "oauthdb init: create and migrate the dev database"
"$tool" init "$db"

say "at the sqlite3 prompt: .load the extension, add a user, link Google, seal tokens"
sqlite3 -bail "$db" <<SQL
.load $build/oauthdb
.mode box
SELECT oauthdb_schema_version() AS schema_version;
INSERT INTO users(id, email, display_name, password_hash)
  VALUES ('0192f3c4-0000-7000-8000-00000000d001', 'ada@example.com', 'Ada',
          password_hash('correct horse battery staple'));
SELECT email, password_verify(password_hash, 'correct horse battery staple') AS password_ok
  FROM users;
INSERT INTO user_providers(id, user_id, provider, provider_id, provider_email)
  VALUES ('0192f3c4-0000-7000-8000-00000000d002', '0192f3c4-0000-7000-8000-00000000d001',
          'google', '1078432', 'ada@example.com');
-- The vault seals on the way in: only ciphertext reaches the file.
INSERT INTO oauth_token_vault(id, user_provider_id, token_type, access_token, refresh_token,
                              scope, expires_at)
  VALUES ('0192f3c4-0000-7000-8000-00000000d003', '0192f3c4-0000-7000-8000-00000000d002',
          'Bearer', 'ya29.demo-access-token', '1//demo-refresh-token',
          'https://www.googleapis.com/auth/gmail.modify', unixepoch() + 600);
SELECT id, token_key_id(access_token) AS key_id, length(access_token) AS sealed_bytes,
       hex(substr(access_token, 1, 6)) AS header
  FROM oauth_tokens;
SELECT access_token, refresh_token FROM oauth_token_vault;
SELECT token_open(access_token, 'oauth_tokens.access_token:' || id) AS opened
  FROM oauth_tokens;
SELECT id, provider, seconds_left FROM tokens_expiring(3600);
SQL

say "sessions: create one (the token is shown once; only its SHA-256 is stored)"
sqlite3 -bail "$db" <<SQL
.load $build/oauthdb
.mode box
CREATE TEMP TABLE t AS SELECT session_create('0192f3c4-0000-7000-8000-00000000d001') AS token;
SELECT length(token) AS token_chars, session_valid(token) AS user_id FROM t;
SELECT session_revoke(token) AS revoked, session_valid(token) AS after_revoke FROM t;
SELECT action, success, details FROM auth_audit_log ORDER BY timestamp, id;
SQL

say "oauthdb rotate: new primary key, every token resealed, old key retired"
"$tool" rotate "$db"
sqlite3 -bail "$db" <<SQL
.load $build/oauthdb
.mode box
SELECT key_id, status, is_primary, sealed_values FROM oauthdb_keys;
SELECT access_token FROM oauth_token_vault;
SQL

say "oauthdb status"
"$tool" status "$db"

if grep -a -q 'ya29.demo-access-token' "$db"*; then
  echo "demo: FAILED: a plaintext token reached the database file" >&2
  exit 1
fi
say "no plaintext token in $db or its WAL: ok"
