#!/usr/bin/env bash
# run.sh measures automatic rollback, in two parts, and prints the figures
# behind the "Rollback" section of docs/performance.md.
#
# 1. The judge alone (go test -run TestRollbackFigures ./internal/analysis
#    -analysis.long): canary requests it needs to fail a canary failing
#    30 % against an error_rate max 0.02 rule, beside the bound of a
#    sequential probability ratio test of 30 % against 2 % with 1 % error
#    rates, simulated in the same run; requests to detect a 2 % → 5 %
#    error-rate regression (maxVsBaseline) and a 2× latency regression
#    (latency_p99_ms maxRatioVsBaseline); the false-rollback rate over
#    1,000 A/A runs judged after every request. Seeded: the same figures
#    every time.
# 2. A real server (bench/rollback/main.go says what it does): a temp data
#    dir, loopback ports, --fault-injection-envs production, model "bench"
#    with external oip-v2 versions pointing at bench/gateway/upstream (a
#    constant answer, so 1,000 requests/s cost the two-CPU machine little
#    and the figures are the controller's, not a model's); a paced
#    open-loop 1,000 requests/s through the gateway; 20 rollouts of a
#    fresh candidate at 20 % that aborts 30 % of its requests with 500.
#
# Needs Go and curl. Everything it starts is stopped and its temp folder
# removed when it exits.
#
# Usage: bench/rollback/run.sh   (from anywhere inside the repository)
# Knobs: RUNS=20 RATE=1000 WEIGHT=20 ABORT_PERCENT=30
#        ROLLOUT_INTERVAL= (the server's --rollout-interval; unset: its default)
#        NICE= (a niceness for the server, the upstream and the load
#        generator, e.g. -10 as root, so a machine busy with other jobs
#        distorts the live figures less; unset: the default priority)
#        JUDGE=1 (0 skips part 1) LIVE=1 (0 skips part 2)
#        VERBOSE=0 (1 prints each run's timeline)
set -euo pipefail

cd "$(dirname "$0")/../.."
runs=${RUNS:-20}
rate=${RATE:-1000}
weight=${WEIGHT:-20}
abort_percent=${ABORT_PERCENT:-30}
want_judge=${JUDGE:-1}
want_live=${LIVE:-1}
prio=()
extra=()
if [ "${VERBOSE:-0}" = 1 ]; then extra+=(-v); fi
if [ -n "${NICE:-}" ]; then prio=(nice -n "$NICE"); fi

say() { echo "bench/rollback: $*" >&2; }
command -v go >/dev/null || { say "needs Go on PATH"; exit 1; }
command -v curl >/dev/null || { say "needs curl on PATH"; exit 1; }

if [ "$want_judge" = 1 ]; then
	echo "== the judge alone (internal/analysis, seeded simulations) =="
	go test -count=1 -timeout 30m -run '^TestRollbackFigures$' -v ./internal/analysis -args -analysis.long >"${TMPDIR:-/tmp}/slipway-bench-rollback-judge.$$" 2>&1 ||
		{ cat "${TMPDIR:-/tmp}/slipway-bench-rollback-judge.$$" >&2; rm -f "${TMPDIR:-/tmp}/slipway-bench-rollback-judge.$$"; say "the judge's simulations failed"; exit 1; }
	sed -n 's/^ *rollbackfigures_test.go:[0-9]*: //p' "${TMPDIR:-/tmp}/slipway-bench-rollback-judge.$$"
	rm -f "${TMPDIR:-/tmp}/slipway-bench-rollback-judge.$$"
	echo
fi
[ "$want_live" = 1 ] || exit 0

# --- processes and cleanup --------------------------------------------------

. bench/lib.sh # the script runs from the module root (the cd above)
bench_start rollback

# --- build and start --------------------------------------------------------

say "building slipway, the upstream and the load generator"
go build -o "$tmp/slipway" ./cmd/slipway
go build -o "$tmp/upstream" ./bench/gateway/upstream
go build -o "$tmp/rollback" ./bench/rollback

"${prio[@]}" "$tmp/upstream" >"$tmp/upstream.out" 2>&1 &
pids+=($!)
upstream=$(first_line "$tmp/upstream.out")

server_flags=(--addr 127.0.0.1:0 --gateway-addr 127.0.0.1:0 --data-dir "$tmp/data" --fault-injection-envs production)
if [ -n "${ROLLOUT_INTERVAL:-}" ]; then server_flags+=(--rollout-interval "$ROLLOUT_INTERVAL"); fi
mkdir -p "$tmp/data"
"${prio[@]}" "$tmp/slipway" server "${server_flags[@]}" >"$tmp/slipway.log" 2>&1 &
pids+=($!)
server_pid=$!
listening=""
for _ in $(seq 300); do
	listening=$(grep -m1 '"msg":"slipway server listening"' "$tmp/slipway.log" 2>/dev/null || true)
	[ -n "$listening" ] && break
	alive "$server_pid" || break
	sleep 0.2
done
if [ -z "$listening" ]; then
	say "slipway server did not start:"
	cat "$tmp/slipway.log" >&2
	exit 1
fi
api_addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' <<<"$listening")
gw_addr=$(sed -n 's/.*"gateway_addr":"\([^"]*\)".*/\1/p' <<<"$listening")
for _ in $(seq 300); do
	curl -sf -o /dev/null --max-time 2 "http://$api_addr/readyz" && break
	sleep 0.2
done

echo "== a real server: slipway server (API $api_addr, gateway $gw_addr), upstream $upstream =="
rc=0
"${prio[@]}" "$tmp/rollback" -api "$api_addr" -gateway "$gw_addr" -token-file "$tmp/data/admin.token" \
	-upstream "http://$upstream" -runs "$runs" -rate "$rate" -weight "$weight" \
	-abort-percent "$abort_percent" -server-pid "$server_pid" -server-log "$tmp/slipway.log" "${extra[@]}" || rc=$?
if [ "$rc" != 0 ]; then
	say "the measurement failed; the server's log ends:"
	tail -n 30 "$tmp/slipway.log" >&2
	exit "$rc"
fi
