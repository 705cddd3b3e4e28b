# export_util.tcl: helpers shared by the oauthdb-export tests (export*.test).
#
# Every PostgreSQL client runs without LD_PRELOAD: under the sanitizer run
# test/run.sh preloads libasan for the interpreters, and psql, createdb and
# pg_ctl are neither ours nor instrumented.

set ::exporter [file join $::build oauthdb-export]
set ::export_log ""      ;# every stdout and stderr of the exporter, for leak checks

proc pgclean {args} { exec env -u LD_PRELOAD {*}$args }
# Debian's /usr/bin/psql is a Perl wrapper that costs 0.15 s a call: use the
# binaries themselves.
set ::pgbin /usr/lib/postgresql/15/bin

# psql on DBNAME: unaligned, tuples only, fields separated by |.
proc pg {dbname sql} {
  pgclean $::pgbin/psql -X -q -v ON_ERROR_STOP=1 -At -d $dbname -c $sql 2>@1
}
proc pg_newdb {{prefix exp}} {
  set name ${prefix}_[pid]_[incr ::pg_dbseq]
  pgclean $::pgbin/createdb $name
  return $name
}

# run_export ARGS...: run the exporter; returns {exit stdout stderr}.
# A leading -env {NAME VALUE ...} sets environment variables for the run.
proc run_export {args} {
  set envs {}
  if {[lindex $args 0] eq "-env"} {
    set envs [lindex $args 1]
    set args [lrange $args 2 end]
  }
  set out [file join $::testdir export.out]
  set err [file join $::testdir export.err]
  set rc 0
  set cmd [list env]
  foreach {k v} $envs { lappend cmd $k=$v }
  if {[catch {exec {*}$cmd $::exporter {*}$args > $out 2> $err} msg opts]} {
    set ec [dict get $opts -errorcode]
    if {[lindex $ec 0] eq "CHILDSTATUS"} { set rc [lindex $ec 2] } else { set rc "error: $msg" }
  }
  set fd [open $out rb]; set o [read $fd]; close $fd
  set fd [open $err rb]; set e [read $fd]; close $fd
  append ::export_log $o $e
  list $rc $o $e
}

# A field of the --json report, through python3's json module.
proc json_get {json expr} {
  pgclean python3 -c "import json,sys; r=json.load(sys.stdin); print($expr)" << $json
}

# Everything a target database holds in the nine tables and schema_migrations
# (without applied_at), as one md5: "exactly as before" compares these.
proc pg_fingerprint {dbname} {
  set tables {schema_migrations users user_preferences user_sessions service_configs user_providers oauth_tokens token_refresh_log auth_audit_log sync_logs}
  set have [pg $dbname "SELECT string_agg(t, ' ') FROM unnest(ARRAY\['[join $tables ',']'\]) t WHERE to_regclass(t) IS NOT NULL"]
  if {$have eq ""} { return empty }
  set parts {}
  foreach t $have {
    if {$t eq "schema_migrations"} {
      lappend parts "SELECT 'm:' || md5(coalesce(string_agg(version || name || checksum, ',' ORDER BY version), '')) FROM schema_migrations"
    } else {
      lappend parts "SELECT '$t:' || count(*) || ':' || md5(coalesce(string_agg(x::text, ',' ORDER BY x.id), '')) FROM $t x"
    }
  }
  lsort [split [pg $dbname [join $parts " UNION ALL "]] \n]
}

# Every row of TABLE on both sides, rendered column by column from the
# target's column types: text and bytea as hex of the bytes, timestamps as
# unix seconds, booleans 0/1, jsonb as PostgreSQL's normal form (the source's
# JSON text is normalized by the server, so key order and spacing do not
# count, content does). Returns {source-rows target-rows}.
proc roundtrip_rows {sdb dbname table} {
  set cols [pg $dbname "SELECT column_name || ' ' || udt_name FROM information_schema.columns WHERE table_name = '$table' AND table_schema = current_schema() ORDER BY ordinal_position"]
  set s {} ; set p {} ; set jsoncols {}
  set i 0
  foreach line [split $cols \n] {
    lassign $line c ty
    switch -- $ty {
      text    { lappend s "CASE WHEN $c IS NULL THEN 'N' ELSE hex($c) END"; lappend p "coalesce(upper(encode(convert_to($c, 'UTF8'), 'hex')), 'N')" }
      bytea   { lappend s "CASE WHEN $c IS NULL THEN 'N' ELSE hex($c) END"; lappend p "coalesce(upper(encode($c, 'hex')), 'N')" }
      timestamptz { lappend s "coalesce($c, 'N')"; lappend p "coalesce(extract(epoch FROM $c)::bigint::text, 'N')" }
      bool    { lappend s "coalesce($c, 'N')"; lappend p "coalesce(${c}::int::text, 'N')" }
      jsonb   { lappend s "CASE WHEN $c IS NULL THEN 'N' ELSE hex($c) END"; lappend p "coalesce(upper(encode(convert_to(${c}::text, 'UTF8'), 'hex')), 'N')"; lappend jsoncols $i }
      default { lappend s "coalesce($c, 'N')"; lappend p "coalesce(${c}::text, 'N')" }
    }
    incr i
  }
  set srows {}
  $sdb eval "SELECT [join $s {, }] FROM $table ORDER BY id" v {
    set row {}
    for {set k 0} {$k < $i} {incr k} {
      set x $v([lindex $v(*) $k])
      if {$k in $jsoncols && $x ne "N"} {
        set x [pg $dbname "SELECT upper(encode(convert_to(convert_from(decode('$x', 'hex'), 'UTF8')::jsonb::text, 'UTF8'), 'hex'))"]
      }
      lappend row $x
    }
    lappend srows [join $row |]
  }
  set prows [split [pg $dbname "SELECT concat_ws('|', [join $p {, }]) FROM $table ORDER BY id"] \n]
  if {$prows eq [list ""]} { set prows {} }
  list $srows $prows
}

# The source's rows of TABLE are in the target, exactly (the target may have more).
proc roundtrip_ok {sdb dbname table} {
  lassign [roundtrip_rows $sdb $dbname $table] s p
  set missing {}
  foreach r $s { if {$r ni $p} { lappend missing $r } }
  if {[llength $missing]} { return "$table: [llength $missing] rows differ, e.g. [lindex $missing 0]" }
  return ok
}

# Run PostgreSQL's pg_ctl as the user the cluster belongs to, from /: su
# keeps the working directory, and the checkout may sit in a mode-0700 home
# the postgres user cannot enter (test/checkout.test).
# The server's own pg_ctl ($OAUTHDB_PGBIN: test/run.sh's private installation
# with this build's extension, tools/pg_tree.sh), so a restart runs the same
# server binary, with the same extension, as before.
proc pg_ctl {args} {
  set bin [file join $::env(OAUTHDB_PGBIN) pg_ctl]
  if {[pgclean id -u] == 0} {
    set cmd [join [lmap a [list $bin {*}$args] { string cat ' [string map {' '\\''} $a] ' }] " "]
    pgclean su postgres -s /bin/sh -c "cd / && $cmd"
  } else {
    pgclean $bin {*}$args
  }
}
proc pg_stop {} { pg_ctl -D $::env(OAUTHDB_PGDATA) -m fast -w stop }
proc pg_start {} {
  set sock $::env(PGHOST)
  pg_ctl -D $::env(OAUTHDB_PGDATA) -w -l $sock/log \
    -o "-k $sock -c listen_addresses= -c fsync=off -c full_page_writes=off" start
}
proc pg_running {} { expr {![catch {pgclean $::pgbin/psql -X -At -d postgres -c {SELECT 1}}]} }

# Wait until a statement matching PATTERN (LIKE) runs in an exporter backend.
proc wait_for_query {pattern {timeout_ms 60000}} {
  set until [expr {[clock milliseconds] + $timeout_ms}]
  while {[clock milliseconds] < $until} {
    set n [pg postgres "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'oauthdb-export' AND query LIKE '$pattern'"]
    if {$n > 0} { return 1 }
    after 20
  }
  return 0
}
proc wait_no_exporter {{timeout_ms 20000}} {
  set until [expr {[clock milliseconds] + $timeout_ms}]
  while {[clock milliseconds] < $until} {
    if {[pg postgres "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'oauthdb-export'"] == 0} { return 1 }
    after 20
  }
  return 0
}

# Start the exporter in the background; returns the channel (pid: [pid $ch]).
proc start_export {args} {
  set err [file join $::testdir bg.err]
  set ch [open |[list $::exporter {*}$args 2> $err] r]
  fconfigure $ch -blocking 1
  return $ch
}
# Wait for it; returns {exit-code-or-signal stdout stderr}.
proc finish_export {ch} {
  set out [read $ch]
  set rc 0
  if {[catch {close $ch} msg opts]} {
    set ec [dict get $opts -errorcode]
    switch -- [lindex $ec 0] {
      CHILDSTATUS { set rc [lindex $ec 2] }
      CHILDKILLED { set rc [lindex $ec 2] }
      default { set rc "error: $msg" }
    }
  }
  set fd [open [file join $::testdir bg.err] rb]; set e [read $fd]; close $fd
  append ::export_log $out $e
  list $rc $out $e
}

# A dev database of N oauth_tokens rows with their parents (N/10 users, each
# with one google link; one active token per link, the rest revoked).
# Sealed values are structurally sealed (version 1, algorithm 1, random
# bytes): keep does not open them, and no keyring is needed to build 1e6.
proc make_big_source {path n} {
  forcedelete $path
  open_db big $path
  big eval {SELECT oauthdb_migrate()}
  set users [expr {max(1, $n / 10)}]
  big eval {
    PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
    BEGIN;
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $users)
    INSERT INTO users(id, email, display_name, created_at, updated_at)
      SELECT printf('00000000-0000-7000-8000-%012x', i), 'user' || i || '@example.com',
             'User ' || i, 1700000000 + i, 1700000000 + i FROM k;
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $users)
    INSERT INTO user_providers(id, user_id, provider, provider_id, scopes, linked_at, created_at, updated_at)
      SELECT printf('00000001-0000-7000-8000-%012x', i), printf('00000000-0000-7000-8000-%012x', i),
             'google', 'g' || i, '["email","https://www.googleapis.com/auth/calendar"]',
             1700000000, 1700000000, 1700000000 FROM k;
    WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < $n - 1)
    INSERT INTO oauth_tokens(id, user_provider_id, token_type, access_token, refresh_token, scope,
                             expires_at, is_active, revoked_at, created_at, updated_at)
      SELECT printf('00000002-0000-7000-8000-%012x', i),
             printf('00000001-0000-7000-8000-%012x', i % $users + 1), 'Bearer',
             CAST(x'0101' || randomblob(4 + 24 + 120 + 16) AS BLOB),
             CAST(x'0101' || randomblob(4 + 24 + 100 + 16) AS BLOB),
             'email', 1800000000 + i,
             i < $users, CASE WHEN i < $users THEN NULL ELSE 1750000000 END,
             1700000000 + i, 1700000000 + i FROM k;
    COMMIT;
  }
  close_db big
}
