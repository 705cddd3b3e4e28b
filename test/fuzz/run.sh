#!/bin/bash
# run.sh FUZZ_BUILD SECONDS TARGET...: run each libFuzzer target for SECONDS,
# one after the other (the machine is shared: never two at once), and print
# a line per target with its executions. `make fuzz` calls this.
#
# The committed corpus test/fuzz/corpus/<target> is read; new units go to
# FUZZ_BUILD/corpus/<target>, so a run never dirties the tree (copy a unit
# into the committed corpus by hand when it earns its place). A crash, leak,
# sanitizer report or broken property leaves its input in
# FUZZ_BUILD/artifacts/<target>/ and makes this script fail at the end.
# Each target's whole output is in FUZZ_BUILD/logs/<target>.log.
set -u
build=${1:?usage: test/fuzz/run.sh FUZZ_BUILD SECONDS TARGET...}
seconds=${2:?seconds}
shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
mkdir -p "$build/logs"

failed=0
summary=""
for t in "$@"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  opts=(-max_total_time="$seconds" -timeout=20 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$t/")
  [ -f "test/fuzz/$t.dict" ] && opts+=(-dict="test/fuzz/$t.dict")
  # The exporter reports every invalid row on stderr: thousands a second.
  # libFuzzer keeps its own and the sanitizers' reports on a copy of it.
  [ "$t" = fuzz_export_row ] && opts+=(-close_fd_mask=2)
  echo "== $t: ${seconds}s"
  "$build/fuzz-bin/$t" "${opts[@]}" "$build/corpus/$t" "test/fuzz/corpus/$t" \
    >"$build/logs/$t.log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/logs/$t.log" | tail -1)
  cov=$(grep -a -E '^#[0-9]+.*(DONE|cov:)' "$build/logs/$t.log" | tail -1 |
        sed -n 's/.*cov: \([0-9]*\).*ft: \([0-9]*\).*corp: \([0-9]*\).*/cov \1, ft \2, corpus \3/p')
  line="$t: ${execs:-?} executions in ${seconds}s (${cov:-no stats}), exit $rc"
  echo "$line"
  summary="$summary$line"$'\n'
  if [ $rc -ne 0 ]; then
    failed=1
    grep -a -E 'ERROR|property broken|SUMMARY|Test unit written' "$build/logs/$t.log" | head -20
  fi
done
echo "---"
printf '%s' "$summary"
exit $failed
