// tour.js EXT DB USER_ID: the oauthdb tour from Node with better-sqlite3 12
// (test/clients.test runs it; docs/CLIENTS.md shows the same calls).
// Prints one result a line; the test compares them with the other clients'.
// The keyring comes from $OAUTHDB_KEYRING, as in an application.
'use strict';
const Database = require('better-sqlite3');

const [ext, file, uid] = process.argv.slice(2);
const db = new Database(file);
db.loadExtension(ext);             // finds sqlite3_oauthdb_init by itself

const one = (sql, ...args) => db.prepare(sql).pluck().get(...args);
const out = [];
out.push(one('SELECT oauthdb_migrate() > 0'));
db.prepare("INSERT INTO users(id, email) VALUES (?, 'node@example.com')").run(uid);

// A sealed value is a Buffer: version 1, algorithm 1, key id, nonce, ciphertext + tag.
const sealed = one('SELECT token_seal(?, ?)', 'ya29.client-tour', 'ad-1');
if (!Buffer.isBuffer(sealed) || sealed[0] !== 1 || sealed.length !== 16 + 46) {
  throw new Error('token_seal did not return a sealed value');
}
out.push(one('SELECT token_open(?, ?)', sealed, 'ad-1'));
out.push(one('SELECT token_key_id(?)', sealed));

const token = one('SELECT session_create(?)', uid);
out.push(one('SELECT session_valid(?)', token));
out.push(one('SELECT session_revoke(?)', token));
out.push(one('SELECT session_valid(?)', token) === null ? 1 : 0);

// The wrong associated data: an exception with the extension's message.
try {
  one("SELECT token_open(?, 'ad-2')", sealed);
  out.push('opened with the wrong associated data');
} catch (e) {
  out.push(e.message);
}

// The vault: plaintext in, sealed at rest, plaintext out.
const link = one(`INSERT INTO user_providers(id, user_id, provider, provider_id)
                  VALUES (uuid7(), ?, 'google', 'node-1') RETURNING id`, uid);
db.prepare(`INSERT INTO oauth_token_vault(id, user_provider_id, access_token, refresh_token, expires_at)
            VALUES (uuid7(), ?, 'ya29.vault-tour', '1//vault-tour', unixepoch() + 3599)`).run(link);
out.push(one('SELECT access_token FROM oauth_token_vault WHERE user_provider_id = ?', link));
out.push(one('SELECT typeof(access_token) FROM oauth_tokens WHERE user_provider_id = ?', link));

// The busy timeout in force: better-sqlite3 sets its own (5000 ms by
// default), so the extension leaves it alone.
out.push(db.pragma('busy_timeout', { simple: true }));
db.close();
console.log(out.join('\n'));
