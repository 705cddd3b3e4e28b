# concurrency_worker.tcl: one of the writer processes of concurrency.test.
#
#   tclsh concurrency_worker.tcl EXT DB KEYRING N USER_ID SECONDS MAX_OPS LOG
#
# Does what an application's request handlers do, as fast as it can, on its
# own user, until SECONDS have passed or MAX_OPS operations are done: creates,
# checks and revokes sessions, links a provider account and stores its token
# through oauth_token_vault, refreshes and deletes tokens, and appends audit
# rows. Every write is in autocommit mode, as an application issues it, except
# the account link, which is one BEGIN IMMEDIATE transaction of three writes.
#
# LOG gets one line per committed write, written after the commit returned,
# so the database must hold exactly what the log says:
#   session.create SESSION_ID | session.revoke SESSION_ID
#   link LINK_ID TOKEN_ID | token.refresh TOKEN_ID VERSION | token.delete TOKEN_ID
#   note SEQ
# and one line per failure: `error OP CODE MESSAGE`. No token goes to the log:
# the tokens are fakes derived from ids ("ya29.conc-<token id>-v<version>"),
# so the checker computes them, and session tokens stay in this process.
#
# The connection sets no busy timeout of its own: the extension's default
# (5000 ms when the application has none) is what is under test.
package require sqlite3
lassign $argv ext db keyring n uid seconds min_ops max_ops log

set logf [open $log w]
fconfigure $logf -buffering line
proc committed {args} { puts $::logf $args }
set ::errors 0
proc failed {op msg} {
  incr ::errors
  puts $::logf [list error $op [w errorcode] [string range $msg 0 300]]
}

sqlite3 w $db
w enable_load_extension 1
w eval {SELECT load_extension($ext)}
w enable_load_extension 0
puts $logf [list busy_timeout [w one {PRAGMA busy_timeout}]]
# What a WAL application runs with (SQLite's advice for WAL): commits are
# durable against a crash of the process, and fsync happens at checkpoints.
# With FULL every commit waits for an fsync (about 9 ms on a busy virtual
# disk), and four writers in tight loops then measure the disk, not oauthdb.
w eval {PRAGMA synchronous = NORMAL}
w eval {SELECT oauthdb_keyring($keyring)}

# Deterministic per worker, so a failing run can be replayed in the same mix.
expr {srand(1000 + $n)}
proc pick {list} { lindex $list [expr {int(rand() * [llength $list])}] }

set live {}        ;# session token -> session id, of unrevoked sessions
set revoked {}     ;# session tokens revoked by this worker
set tokens {}      ;# token id -> access token version
set seq 0
set ops 0
set deadline [expr {[clock milliseconds] + int($seconds * 1000)}]

proc access_token {tid v} { return "ya29.conc-$tid-v$v" }

set slowest 0      ;# the longest operation, in ms: how close to the busy timeout
# At least MIN_OPS operations, however slow the machine (a sanitizer build
# on a loaded machine does a third of a quiet one's in SECONDS), so that
# the file always tests enough writes; then until SECONDS have passed.
while {$ops < $max_ops && ([clock milliseconds] < $deadline || $ops < $min_ops)} {
  incr ops
  set t0 [clock milliseconds]
  set r [expr {rand()}]
  if {$r < 0.20} {
    # Sign in. The id is looked up afterwards by rowid: only this worker
    # creates sessions for its user.
    if {[catch {
      set tok [w one {SELECT session_create($uid)}]
      set sid [w one {SELECT id FROM user_sessions WHERE user_id = $uid ORDER BY rowid DESC LIMIT 1}]
      dict set live $tok $sid
      committed session.create $sid
    } msg]} { failed session.create $msg }
  } elseif {$r < 0.30 && [dict size $live] > 0} {
    set tok [pick [dict keys $live]]
    if {[catch {
      set got [w one {SELECT session_revoke($tok)}]
      if {$got != 1} { error "session_revoke returned $got for a live session" }
      committed session.revoke [dict get $live $tok]
      dict unset live $tok
      lappend revoked $tok
    } msg]} { failed session.revoke $msg }
  } elseif {$r < 0.40 && [dict size $live] > 0} {
    # A request: check a live session and a revoked one (reads only).
    set tok [pick [dict keys $live]]
    if {[catch {
      set got [w one {SELECT session_valid($tok)}]
      if {$got ne $uid} { error "session_valid of a live session gave '$got'" }
      if {[llength $revoked]} {
        set old [pick $revoked]
        set got [w one {SELECT session_valid($old)}]
        if {$got ne ""} { error "session_valid of a revoked session gave '$got'" }
      }
    } msg]} { failed session.valid $msg }
  } elseif {$r < 0.55} {
    # Link an account: the link, its token (through the vault, which adds
    # token.stored) and an app.link audit row, all or nothing.
    if {[catch {
      w transaction immediate {
        set link [w one {SELECT uuid7()}]
        set tid [w one {SELECT uuid7()}]
        set a [access_token $tid 1]
        set rt "1//conc-$tid"
        w eval {
          INSERT INTO user_providers(id, user_id, provider, provider_id)
          VALUES ($link, $uid, 'google', 'conc-' || $link);
          INSERT INTO oauth_token_vault(id, user_provider_id, access_token, refresh_token, expires_at)
          VALUES ($tid, $link, $a, $rt, unixepoch() + 3599);
          INSERT INTO auth_audit_log(id, timestamp, user_id, action, details)
          SELECT id, timestamp, $uid, 'app.link', json_object('worker', $n, 'link', $link)
            FROM auth_audit_log_new_id;
        }
      }
      dict set tokens $tid 1
      committed link $link $tid
    } msg]} { failed link $msg }
  } elseif {$r < 0.70 && [dict size $tokens] > 0} {
    # Refresh: the vault reseals, logs fingerprints and audits.
    set tid [pick [dict keys $tokens]]
    set v [expr {[dict get $tokens $tid] + 1}]
    if {[catch {
      set a [access_token $tid $v]
      w eval {
        UPDATE oauth_token_vault SET access_token = $a, expires_at = unixepoch() + 3599
         WHERE id = $tid
      }
      if {[w changes] != 1} { error "refresh changed [w changes] rows" }
      dict set tokens $tid $v
      committed token.refresh $tid $v
    } msg]} { failed token.refresh $msg }
  } elseif {$r < 0.75 && [dict size $tokens] > 0} {
    set tid [pick [dict keys $tokens]]
    if {[catch {
      w eval {DELETE FROM oauth_token_vault WHERE id = $tid}
      if {[w changes] != 1} { error "delete changed [w changes] rows" }
      dict unset tokens $tid
      committed token.delete $tid
    } msg]} { failed token.delete $msg }
  } elseif {$r < 0.85 && [dict size $tokens] > 0} {
    # Read a token back through the vault: it opens to the last version.
    set tid [pick [dict keys $tokens]]
    if {[catch {
      set got [w one {SELECT access_token FROM oauth_token_vault WHERE id = $tid}]
      if {$got ne [access_token $tid [dict get $tokens $tid]]} {
        error "vault read of $tid gave another version"
      }
    } msg]} { failed token.read $msg }
  } else {
    # An application's own audit event; seq numbers them 1, 2, 3... so any
    # consistent snapshot holds a gapless prefix.
    if {[catch {
      set s [expr {$seq + 1}]
      w eval {
        INSERT INTO auth_audit_log(id, timestamp, user_id, action, details)
        SELECT id, timestamp, $uid, 'app.note', json_object('worker', $n, 'seq', $s)
          FROM auth_audit_log_new_id
      }
      set seq $s
      committed note $s
    } msg]} { failed note $msg }
  }
  set t [expr {[clock milliseconds] - $t0}]
  if {$t > $slowest} { set slowest $t }
}

w close
close $logf
puts [list ops $ops errors $::errors slowest_ms $slowest]
