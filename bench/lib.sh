# Shared by the bench scripts: a temp folder, the processes they start and
# their cleanup, and waiting for a program's first output line. Source it
# after defining say(); it sets $tmp and pids, and traps EXIT to stop
# every process in pids (TERM, then KILL after 5 s) and remove $tmp.
# Usage, from the module root: . bench/lib.sh; bench_start NAME

# alive PID: the process runs (an exited child not yet waited for does not).
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
		if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
	exit "$rc"
}

# bench_start NAME: makes $tmp (slipway-bench-NAME.XXXXXX) and sets the traps.
bench_start() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-$1.XXXXXX")
	pids=()
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# first_line FILE: waits (10 s at most) for a program's first output line,
# whole (ended by a newline, so a half-written address is never read).
first_line() {
	local f=$1 line=""
	for _ in $(seq 100); do
		line=$(head -n 1 "$f" 2>/dev/null || true)
		if [ -n "$line" ] && [ "$(wc -l <"$f")" -ge 1 ]; then
			echo "$line"
			return 0
		fi
		sleep 0.1
	done
	say "no address from $f:"
	cat "$f" >&2
	return 1
}
