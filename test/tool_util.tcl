# tool_util.tcl: helpers for the tests that drive the `oauthdb` shell tool
# (tool.test, rotate.test, backup.test), sourced after tester.tcl.
#
#   lassign [tool init $db] code out     ;# exit code, stdout + stderr
#   make_tokens db 1000                  ;# rows in oauth_tokens, plaintexts in ::plain
#   check_tokens db                      ;# every value opens, with its own AD

set ::tool [file join $::build oauthdb]

# Run the tool; returns {exit-code output}, output being stdout and stderr
# together. Every output is kept in ::tool_outputs, so a test can check at
# the end that no key ever appeared in one.
proc tool {args} {
  set rc [catch {exec $::tool {*}$args 2>@1} out opts]
  set code 0
  if {$rc} {
    set ec [dict get $opts -errorcode]
    set code [expr {[lindex $ec 0] eq "CHILDSTATUS" ? [lindex $ec 2] : $ec}]
    regsub {\n?child process exited abnormally$} $out "" out
  }
  append ::tool_outputs $out\n
  list $code $out
}
set ::tool_outputs ""

# Exit code only.
proc tool_code {args} { lindex [tool {*}$args] 0 }

# The permission bits of PATH, as 0600.
proc mode_of {path} {
  format %04o [expr {[file attributes $path -permissions] & 07777}]
}

# The key hex strings of a keyring file (to check no output shows one).
proc keyring_keys {path} {
  set keys {}
  set fd [open $path]
  foreach line [split [read $fd] \n] {
    if {[regexp {^\s*[0-9a-f]{8}\s+([0-9a-fA-F]{64})\s} $line -> k]} { lappend keys $k }
  }
  close $fd
  return $keys
}

# "status" of key ID in a keyring file, or "" when absent.
proc keyring_status {path id} {
  set fd [open $path]
  set text [read $fd]
  close $fd
  foreach line [split $text \n] {
    if {[regexp "^\\s*$id\\s+\\S+\\s+(\\S+)" $line -> st]} { return $st }
  }
  return ""
}

proc keyring_primary {path} {
  set fd [open $path]
  set text [read $fd]
  close $fd
  foreach line [split $text \n] {
    if {[regexp {^\s*([0-9a-f]{8})\s+\S+\s+primary} $line -> id]} { return $id }
  }
  return ""
}

proc file_text {path} {
  set fd [open $path rb]
  set data [read $fd]
  close $fd
  return $data
}

# A unique marker for this run: every plaintext token contains it, so the
# file-bytes checks look for it.
set ::marker "PLAINTEXT-[format %08x [expr {int(rand() * 0xffffffff)}]]"

# Add N tokens on one provider link (created on first use) through HANDLE,
# which must have a keyring. Access tokens "ya29.$marker-a-<i>", refresh
# tokens (two rows in three) "1//$marker-r-<i>"; all inactive but the
# first, so one link can hold many rows. Plaintexts are remembered in
# ::plain(<id>,access|refresh).
proc make_tokens {handle n {first 1}} {
  $handle eval {
    INSERT OR IGNORE INTO users(id, email)
      VALUES ('0192f3c4-0000-7000-8000-000000000001', 'ada@example.com');
    INSERT OR IGNORE INTO user_providers(id, user_id, provider, provider_id)
      VALUES ('0192f3c4-0000-7000-8000-0000000000a1',
              '0192f3c4-0000-7000-8000-000000000001', 'google', 'g-1');
  }
  $handle transaction {
    for {set i $first} {$i < $first + $n} {incr i} {
      set id [$handle one {SELECT uuid7()}]
      set a "ya29.$::marker-a-$i"
      set r [expr {$i % 3 ? "1//$::marker-r-$i" : ""}]
      set active [expr {$i == 1 ? 1 : 0}]
      $handle eval {
        INSERT INTO oauth_tokens(id, user_provider_id, access_token, refresh_token,
                                 is_active, expires_at)
        VALUES ($id, '0192f3c4-0000-7000-8000-0000000000a1',
                token_seal($a, 'oauth_tokens.access_token:' || $id),
                CASE WHEN $r <> '' THEN token_seal($r, 'oauth_tokens.refresh_token:' || $id) END,
                $active, unixepoch() + 600 + $i)
      }
      set ::plain($id,access) $a
      if {$r ne ""} { set ::plain($id,refresh) $r }
    }
  }
}

# How many values of oauth_tokens do not open to what make_tokens sealed,
# with their own associated data (0 when all is well). HANDLE needs the
# keyring as it is now.
proc bad_tokens {handle} {
  set bad 0
  $handle eval {
    SELECT id,
      token_open(access_token, 'oauth_tokens.access_token:' || id) AS a,
      token_open(refresh_token, 'oauth_tokens.refresh_token:' || id) AS r,
      refresh_token IS NULL AS no_r
    FROM oauth_tokens
  } {
    if {![info exists ::plain($id,access)] || $a ne $::plain($id,access)} { incr bad }
    if {$no_r ? [info exists ::plain($id,refresh)]
              : (![info exists ::plain($id,refresh)] || $r ne $::plain($id,refresh))} {
      incr bad
    }
  }
  return $bad
}

# Values per key id: {id count ...}.
proc key_counts {handle} {
  $handle eval {
    SELECT token_key_id(v), count(*) FROM (
      SELECT access_token AS v FROM oauth_tokens
      UNION ALL SELECT refresh_token FROM oauth_tokens WHERE refresh_token IS NOT NULL)
    GROUP BY 1 ORDER BY 1
  }
}

# Does any of FILES (that exist) contain the marker?
proc files_with_plaintext {args} {
  set found {}
  foreach f $args {
    if {[file exists $f] && [string first $::marker [file_text $f]] >= 0} { lappend found $f }
  }
  return $found
}
