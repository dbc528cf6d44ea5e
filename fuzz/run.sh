#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders with atheris, bounded in time (CI) or in inputs (long runs).
#
#   fuzz/run.sh [--seconds N] [--runs N] [--jobs N] [--only netflow5,sflow,template] [--out DIR]
#
# --seconds: time budget per harness (default 45); --runs: stop each harness after N inputs
# (whichever comes first); --jobs: harnesses at once (default 3). The corpus is the committed
# encoder-made seeds (fuzz/corpus/) plus the real captures read from ../shared/captures (or
# $FLOWPIPE_CAPTURES) into the work dir at run time. Crashes (reproducers) and logs go to --out
# (default: a fresh temp dir). Exit 1 when a harness found something, 0 otherwise; 0 with a SKIP
# line when atheris cannot be installed on this Python.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
seconds=45 runs=-1 jobs=3 only="netflow5,sflow,template" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    --jobs) jobs=$2; shift 2;;
    --only) only=$2; shift 2;;
    --out) out=$2; shift 2;;
    *) echo "usage: $0 [--seconds N] [--runs N] [--jobs N] [--only a,b] [--out DIR]" >&2; exit 2;;
  esac
done

if ! "$PY" -c "import atheris" 2>/dev/null; then
  if ! "$PY" -m pip install -q atheris >/dev/null 2>&1 || ! "$PY" -c "import atheris" 2>/dev/null; then
    echo "SKIP fuzz: atheris cannot be installed for $("$PY" -V 2>&1) (no wheel, and building it needs clang/libFuzzer)"
    exit 0
  fi
fi

out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/flowpipe-fuzz.XXXXXX")}
mkdir -p "$out"
declare -A max_len=([netflow5]=4096 [sflow]=4096 [template]=4096)
names=${only//,/ }
pids=()
for name in $names; do
  work="$out/$name"
  mkdir -p "$work/corpus"
  cp fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null || true
  "$PY" -m fuzz.fuzz_"$name" --write-seeds "$work/corpus" --captures >/dev/null 2>"$work/seeds.err" || {
    echo "fuzz $name: could not write seeds:"; cat "$work/seeds.err"; exit 1; }
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 0.5; done
  "$PY" -m fuzz.fuzz_"$name" "$work/corpus" -max_total_time="$seconds" -runs="$runs" \
    -max_len="${max_len[$name]}" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" >"$work/fuzz.log" 2>&1 &
  pids+=("$!:$name")
done

fail=0
printf '%-10s %8s %12s %10s %8s %8s  %s\n' harness status inputs "inputs/s" "corpus+" "rss MB" "findings"
for entry in "${pids[@]}"; do
  pid=${entry%%:*} name=${entry#*:}
  wait "$pid"; rc=$?
  log="$out/$name/fuzz.log"
  stat() { grep -m1 "stat::$1:" "$log" | awk '{print $2}'; }
  n=$(stat number_of_executed_units) rate=$(stat average_exec_per_sec)
  [ -n "$n" ] || n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  finds=$(find "$out/$name" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
          -o -name 'slow-unit-*' -o -name 'state-crash-*' \) | tr '\n' ' ')
  status=ok
  if [ "$rc" -ne 0 ]; then status="rc=$rc"; fail=1; fi
  printf '%-10s %8s %12s %10s %8s %8s  %s\n' "$name" "$status" "${n:-?}" "${rate:-?}" "$(stat new_units_added)" \
    "$(stat peak_rss_mb)" "${finds:-none}"
  if [ "$rc" -ne 0 ]; then echo "--- $name: end of $log"; grep -v '^INFO: Instrumenting' "$log" | tail -25; fi
done
echo "logs, corpora and reproducers: $out"
exit $fail
