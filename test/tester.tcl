# tester.tcl: the oauthdb test harness, in the style of SQLite's own.
#
#   source [file join [file dirname [info script]] tester.tcl]
#   do_execsql_test seal-1.1 { SELECT token_key_id(x'01...') } {9c0e51d2}
#   do_catchsql_test seal-1.2 { SELECT token_open(x'02') } {1 {token_open: ...}}
#   finish_test
#
# Runs on plain tclsh with Debian's libsqlite3-tcl. Every connection opened
# with open_db loads the real extension ($env(OAUTHDB_EXT)) through
# load_extension(), and close_db checks that no prepared statement leaked
# before it closes. Each test file gets its own scratch directory,
# $::testdir. test/run.sh runs the files and adds up the results.

package require sqlite3

set ::nTest 0
set ::nFail 0
set ::failList {}
set ::testprefix ""
set ::ext $env(OAUTHDB_EXT)
set ::build $env(OAUTHDB_BUILD)
if {[info exists env(OAUTHDB_TEST_DIR)]} {
  set ::testdir $env(OAUTHDB_TEST_DIR)
} else {
  set ::testdir [file normalize [file join /tmp oauthdb-test-[pid]]]
  file mkdir $::testdir
}
set ::srcdir [file normalize [file join [file dirname [info script]] ..]]

# Open HANDLE on FILE (a scratch file by default) and load the extension.
proc open_db {{handle db} {file ""}} {
  if {$file eq ""} { set file [file join $::testdir test.db] }
  sqlite3 $handle $file
  $handle enable_load_extension 1
  $handle eval {SELECT load_extension($::ext)}
  $handle enable_load_extension 0
  return $handle
}

# Remove a database and its WAL and journal files.
proc forcedelete {args} {
  foreach f $args {
    foreach suffix {"" -wal -shm -journal} { file delete -force $f$suffix }
  }
}

# Statements still prepared on HANDLE, other than the extension's own cache
# (which the extension finalizes at close: see ext/sqlite/conn.c) and this probe.
proc open_statements {{handle db}} {
  $handle cache flush
  $handle eval {
    SELECT sql FROM sqlite_stmt
    WHERE sql NOT LIKE '/*oauthdb cache*/%' AND sql NOT LIKE '%sqlite_stmt%'
  }
}

proc close_db {{handle db}} {
  set leaked [open_statements $handle]
  if {[llength $leaked]} {
    fail_test "leak-check-$handle" "statements left prepared at close: $leaked"
  }
  $handle close
}

proc fail_test {name msg} {
  incr ::nFail
  lappend ::failList $name
  puts "! $name $msg"
}

# do_test NAME SCRIPT EXPECTED: run SCRIPT, compare its result to EXPECTED.
# EXPECTED of the form /PATTERN/ is a glob match instead.
proc do_test {name script expected} {
  set name "$::testprefix$name"
  incr ::nTest
  if {[catch {uplevel 1 $script} result]} {
    set result "error: $result"
  }
  if {[regexp {^/(.*)/$} $expected -> pattern]} {
    set ok [string match $pattern $result]
  } else {
    set ok [expr {$result eq $expected}]
  }
  if {$ok} {
    puts "$name... Ok"
  } else {
    fail_test $name "\n  Expected: \[$expected\]\n       Got: \[$result\]"
  }
}

proc execsql {sql {handle db}} { uplevel 1 [list $handle eval $sql] }
proc catchsql {sql {handle db}} {
  set rc [catch {uplevel 1 [list $handle eval $sql]} msg]
  list $rc $msg
}

proc do_execsql_test {name sql {expected {}}} {
  uplevel 1 [list do_test $name [list execsql $sql] [list {*}$expected]]
}
proc do_catchsql_test {name sql expected} {
  uplevel 1 [list do_test $name [list catchsql $sql] $expected]
}

# Write a keyring file at PATH (mode 0600) from {id hex status} triples.
proc write_keyring {path keys} {
  set fd [open $path w 0600]
  puts $fd "# oauthdb keyring written by the test suite"
  foreach {id hex status} $keys { puts $fd "$id $hex $status" }
  close $fd
  file attributes $path -permissions 0600
  return $path
}

# Fresh random key material for tests: {id hex}.
proc random_key {} {
  set id [format %08x [expr {int(rand()*0xffffffff)}]]
  set hex ""
  for {set i 0} {$i < 32} {incr i} { append hex [format %02x [expr {int(rand()*256)}]] }
  list $id $hex
}

# The bytes of FILE (and its WAL), for "no plaintext on disk" checks.
proc file_bytes {path} {
  set data ""
  foreach f [list $path $path-wal] {
    if {[file exists $f]} {
      set fd [open $f rb]; append data [read $fd]; close $fd
    }
  }
  return $data
}

# Is PostgreSQL available to this run (test/run.sh started one)?
proc have_postgres {} { expr {[info exists ::env(PGHOST)] && $::env(PGHOST) ne ""} }

# A new, empty PostgreSQL database for this test file; returns its name.
proc pg_createdb {{prefix t}} {
  set name ${prefix}_[pid]_[incr ::pg_dbseq]
  exec env -u LD_PRELOAD createdb $name
  return $name
}

# Run SQL through psql on DBNAME; returns unaligned, tuples-only output.
proc psql {dbname sql} {
  exec env -u LD_PRELOAD psql -X -q -v ON_ERROR_STOP=1 -At -d $dbname -c $sql 2>@1
}

proc finish_test {} {
  foreach h [info commands db*] {
    if {[catch {$h cache flush}] == 0} { catch {close_db $h} }
  }
  puts "$::nFail errors out of $::nTest tests"
  if {$::nFail} { puts "Failures on these tests: $::failList" }
  puts "oauthdb-results: passed=[expr {$::nTest - $::nFail}] failed=$::nFail"
  exit [expr {$::nFail ? 1 : 0}]
}
