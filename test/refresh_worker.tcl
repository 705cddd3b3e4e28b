# refresh_worker.tcl: one of the refresh workers of refresh.test.
#
#   tclsh refresh_worker.tcl EXT DB KEYRING NAME CLOCK LOG
#
# Does what a refresh worker does, as fast as it can: lists the tokens due
# within 600 seconds, claims each for a 3600-second lease, and stores a
# "refreshed" token through token_refresh_done, until no token is due.
# Every worker runs at the same fixed clock (oauthdb_config('clock')), so
# no lease runs out while they race: a token claimed twice is a bug.
#
# LOG gets one line per claim it won, written after the claim committed:
#   claim TOKEN_ID CLAIM_ID
# one line per skipped claim (`skip TOKEN_ID`), and per failure
# `error OP MESSAGE`. No token goes to the log.
package require sqlite3
lassign $argv ext db keyring name clock log

set logf [open $log w]
fconfigure $logf -buffering line
sqlite3 w $db
w enable_load_extension 1
w eval {SELECT load_extension($ext)}
w enable_load_extension 0
w eval {SELECT oauthdb_keyring($keyring), oauthdb_config('clock', $clock)}

set rounds 0
while {1} {
  set due [w eval {SELECT id FROM tokens_expiring(600)}]
  if {[llength $due] == 0 || [incr rounds] > 50} break
  foreach id $due {
    if {[catch {w one {SELECT token_claim_refresh($id, 600, 3600, $name)}} claim]} {
      puts $logf [list error claim $claim]
      continue
    }
    if {$claim eq ""} { puts $logf [list skip $id]; continue }
    puts $logf [list claim $id $claim]
    set access "ya29.refreshed-by-$name"
    set exp [expr {$clock + 3600}]
    if {[catch {w one {SELECT token_refresh_done($claim, $access, $exp)}} msg]} {
      puts $logf [list error done $msg]
    }
  }
}
w close
close $logf
