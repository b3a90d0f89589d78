#!/usr/bin/env bash
# run.sh measures slipway's inference gateway against nginx (and, on the
# OpenAI path, against the Portkey AI gateway) on loopback, in one run,
# interleaved over several rounds, and prints requests/s, latency
# percentiles and CPU time per request (of the target's own processes,
# from /proc: steadier than requests/s on a shared machine) per target and
# round, the medians and the ratios.
#
# What runs (every listener on 127.0.0.1):
#   - two upstreams (bench/gateway/upstream): versions 1 (A) and 2 (B),
#     constant small answers for OIP v2 infer and OpenAI chat completions;
#   - nginx, one worker, upstream { A weight=9; B weight=1; keepalive 64 }
#     (bench/gateway/nginx.conf.tmpl);
#   - slipway server with a temp data dir: model "bench" (two external
#     oip-v2 versions at A and B) and model "chat" (two openai versions at
#     A and B), each deployed to production at 1=90 2=10; metrics are
#     always on and the access log is written at info, as nginx's is;
#   - a bare httputil.ReverseProxy with the same 90/10 split (bench/gateway/
#     profile -mode httputil): where a standard-library Go gateway starts;
#   - a hand-rolled proxy on net/http's server with the same split
#     (profile -mode direct): what a custom proxy path can get to in Go;
#   - "own": the gateway wired as slipway server wires it, served in
#     process by bench/gateway/profile on the gateway's own HTTP/1.1
#     server (gateway.Server), beside slipway server itself;
#   - Portkey (npm @portkey-ai/gateway, pointed at A through its
#     x-portkey-custom-host header) for the chat path, skipped with a
#     message when it cannot be installed or started.
# wrk runs with the same threads, connections and duration against every
# target: the upstream directly, nginx, slipway, the bare Go proxies (and
# Portkey for chat).
#
# With PROFILE=1 it then serves the gateway in process (bench/gateway/
# profile), loads it with wrk the same way and prints the top of its CPU
# profile for each path; PROFILE_DIR=dir keeps the profiles.
#
# Installs what is missing (wrk, nginx, curl; nodejs and npm for Portkey)
# with apt-get; needs root or sudo for that. Everything it starts is
# stopped and its temp folder removed when it exits.
#
# Usage: bench/gateway/run.sh   (from anywhere inside the repository)
# Knobs: ROUNDS=3 DURATION=10s THREADS=2 CONNS=32 WARMUP=3s LOG_LEVEL=info
#        PORTKEY=1 HTTPUTIL=1 DIRECT=1 OWN=1 (0 skips one)
#        PROFILE=0 PROFILE_DURATION=20s PROFILE_DIR= (keeps the profiles
#        and the binary they need)
#        GATEWAY_GOMAXPROCS= (GOMAXPROCS of slipway and the bare Go proxies;
#        unset: Go's default, one per CPU)
set -euo pipefail

cd "$(dirname "$0")/../.."
repo=$(pwd)
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
threads=${THREADS:-2}
conns=${CONNS:-32}
warmup=${WARMUP:-3s}
log_level=${LOG_LEVEL:-info}
want_portkey=${PORTKEY:-1}
want_httputil=${HTTPUTIL:-1}
want_direct=${DIRECT:-1}
want_own=${OWN:-1}
profile=${PROFILE:-0}
profile_duration=${PROFILE_DURATION:-20s}
gw_env=()
if [ -n "${GATEWAY_GOMAXPROCS:-}" ]; then gw_env=("GOMAXPROCS=$GATEWAY_GOMAXPROCS"); fi

say() { echo "bench/gateway: $*" >&2; }

# --- what the machine needs -------------------------------------------------

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		say "need root or sudo to run: $*"
		return 1
	fi
}

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		as_root apt-get update -qq
		apt_updated=1
	fi
	# Debian's nginx package starts the system nginx on port 80 when it
	# is installed; a policy-rc.d that says "no" (the usual container
	# practice) keeps it from doing so, and is removed afterwards.
	local policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
		as_root chmod +x /usr/sbin/policy-rc.d
		policy=1
	fi
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
	if [ "$policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
	return "$rc"
}

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x "$nginx_bin" ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
	say "installing ${missing[*]}"
	apt_install "${missing[@]}"
	nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi
command -v go >/dev/null || { say "needs Go on PATH"; exit 1; }

# --- processes and cleanup --------------------------------------------------

. bench/lib.sh # the script runs from the module root (the cd above)
bench_start gateway

free_port() { "$tmp/upstream" -free-port; }

# wait_http URL [curl args]: waits (60 s at most) for a 200 answer.
wait_http() {
	local url=$1
	shift
	for _ in $(seq 300); do
		if curl -sf -o /dev/null --max-time 2 "$@" "$url"; then return 0; fi
		sleep 0.2
	done
	return 1
}

# --- build and start --------------------------------------------------------

say "building slipway, the upstream and the in-process gateway"
go build -o "$tmp/slipway" ./cmd/slipway
go build -o "$tmp/upstream" ./bench/gateway/upstream
go build -o "$tmp/profile" ./bench/gateway/profile

"$tmp/upstream" >"$tmp/upstream-a.out" 2>&1 &
pids+=($!)
up_a_pid=$!
"$tmp/upstream" >"$tmp/upstream-b.out" 2>&1 &
pids+=($!)
up_a=$(first_line "$tmp/upstream-a.out")
up_b=$(first_line "$tmp/upstream-b.out")

mkdir -p "$tmp/nginx"
nginx_port=$(free_port)
sed -e "s|@PREFIX@|$tmp/nginx|g" -e "s|@PORT@|$nginx_port|g" \
	-e "s|@UPSTREAM_A@|$up_a|g" -e "s|@UPSTREAM_B@|$up_b|g" \
	bench/gateway/nginx.conf.tmpl >"$tmp/nginx/nginx.conf"
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" >"$tmp/nginx/stdout" 2>&1 &
pids+=($!)
nginx_pid=$!
nginx_addr=127.0.0.1:$nginx_port

mkdir -p "$tmp/data"
env "${gw_env[@]}" "$tmp/slipway" server --addr 127.0.0.1:0 --gateway-addr 127.0.0.1:0 --data-dir "$tmp/data" \
	--log-level "$log_level" >"$tmp/slipway.log" 2>&1 &
pids+=($!)
slipway_pid=$!
listening=""
for _ in $(seq 300); do
	listening=$(grep -m1 '"msg":"slipway server listening"' "$tmp/slipway.log" 2>/dev/null || true)
	[ -n "$listening" ] && break
	sleep 0.2
done
if [ -z "$listening" ]; then
	say "slipway server did not start:"
	cat "$tmp/slipway.log" >&2
	exit 1
fi
api_addr=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' <<<"$listening")
gw_addr=$(sed -n 's/.*"gateway_addr":"\([^"]*\)".*/\1/p' <<<"$listening")

slip() {
	SLIPWAY_ADDR=$api_addr SLIPWAY_TOKEN=$(cat "$tmp/data/admin.token") "$tmp/slipway" "$@" >>"$tmp/cli.log" 2>&1 ||
		{ say "slipway $* failed:"; tail -n 20 "$tmp/cli.log" >&2; exit 1; }
}
say "registering models on slipway (API $api_addr, gateway $gw_addr)"
slip model create bench
slip version push bench --format external --set "url=http://$up_a" --set protocol=oip-v2
slip version push bench --format external --set "url=http://$up_b" --set protocol=oip-v2
slip deploy bench 1 --env production
slip traffic set bench --env production 1=90 2=10
slip model create chat
slip version push chat --format openai --set "url=http://$up_a"
slip version push chat --format openai --set "url=http://$up_b"
slip deploy chat 1 --env production
slip traffic set chat --env production 1=90 2=10

# --- request bodies ---------------------------------------------------------

infer_body='{"id":"r1","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3.5]}]}'
chat_body='{"model":"chat","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8}'
lua() { # lua FILE BODY [HEADER VALUE]...
	local f=$1 body=$2
	shift 2
	{
		echo 'wrk.method = "POST"'
		echo "wrk.body = [[$body]]"
		echo 'wrk.headers["Content-Type"] = "application/json"'
		while [ $# -ge 2 ]; do
			echo "wrk.headers[\"$1\"] = \"$2\""
			shift 2
		done
	} >"$f"
}
lua "$tmp/infer.lua" "$infer_body"
lua "$tmp/chat.lua" "$chat_body"
portkey_headers=(x-portkey-provider openai x-portkey-custom-host "http://$up_a/v1" Authorization "Bearer sk-bench")
lua "$tmp/portkey.lua" "$chat_body" "${portkey_headers[@]}"

infer_path=/v2/models/bench/infer
chat_path=/v1/chat/completions

# check URL BODY [HEADER VALUE]...: one request must answer 200.
check() {
	local url=$1 body=$2 args=()
	shift 2
	while [ $# -ge 2 ]; do args+=(-H "$1: $2"); shift 2; done
	curl -sf -o /dev/null --max-time 5 -H 'Content-Type: application/json' "${args[@]}" -d "$body" "$url"
}

wait_http "http://$nginx_addr$infer_path" -H 'Content-Type: application/json' -d "$infer_body" ||
	{ say "nginx does not answer:"; cat "$tmp/nginx/error.log" >&2; exit 1; }
wait_http "http://$gw_addr$infer_path" -H 'Content-Type: application/json' -d "$infer_body" ||
	{ say "slipway's gateway does not answer infer:"; tail -n 20 "$tmp/slipway.log" >&2; exit 1; }
check "http://$gw_addr$chat_path" "$chat_body" ||
	{ say "slipway's gateway does not answer chat:"; tail -n 20 "$tmp/slipway.log" >&2; exit 1; }

# start_floor NAME MODE [ARGS]: starts bench/gateway/profile -mode MODE
# on net/http's server (or as ARGS say), its output in $tmp/floor-NAME.*;
# sets floor_addr and floor_pid.
start_floor() {
	local name=$1 mode=$2
	shift 2
	env "${gw_env[@]}" "$tmp/profile" -mode "$mode" -server nethttp "$@" -upstream-a "$up_a" -upstream-b "$up_b" \
		-log-level "$log_level" >"$tmp/floor-$name.out" 2>"$tmp/floor-$name.log" &
	pids+=($!)
	floor_pid=$!
	floor_addr=$(first_line "$tmp/floor-$name.out")
	check "http://$floor_addr$infer_path" "$infer_body" || { say "the $name proxy does not answer"; exit 1; }
}
httputil_addr="" direct_addr="" own_addr=""
if [ "$want_own" = 1 ]; then
	# The gateway wired as slipway server wires it, on its own HTTP/1.1
	# server (gateway.Server), in the profile harness: the "own" target.
	start_floor own slipway -server own
	own_addr=$floor_addr own_pid=$floor_pid
fi
if [ "$want_httputil" = 1 ]; then
	start_floor httputil httputil
	httputil_addr=$floor_addr httputil_pid=$floor_pid
fi
if [ "$want_direct" = 1 ]; then
	start_floor direct direct
	direct_addr=$floor_addr direct_pid=$floor_pid
fi

# --- Portkey ----------------------------------------------------------------

portkey_addr=""
start_portkey() {
	if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
		say "installing nodejs and npm for Portkey"
		apt_install nodejs npm || { say "Portkey skipped: nodejs/npm could not be installed"; return 1; }
	fi
	say "installing @portkey-ai/gateway with npm"
	if ! npm install --prefix "$tmp/portkey" --no-audit --no-fund @portkey-ai/gateway >"$tmp/npm.log" 2>&1; then
		say "Portkey skipped: npm install failed:"
		tail -n 10 "$tmp/npm.log" >&2
		return 1
	fi
	local entry=$tmp/portkey/node_modules/@portkey-ai/gateway/build/start-server.js
	[ -f "$entry" ] || { say "Portkey skipped: $entry not found"; return 1; }
	local port
	port=$(free_port)
	# Portkey binds every interface; loopback.mjs makes it bind 127.0.0.1.
	node --import "$repo/bench/gateway/loopback.mjs" "$entry" --port="$port" --headless >"$tmp/portkey.log" 2>&1 &
	pids+=($!)
	portkey_pid=$!
	for _ in $(seq 150); do
		if check "http://127.0.0.1:$port$chat_path" "$chat_body" "${portkey_headers[@]}"; then
			portkey_addr=127.0.0.1:$port
			say "Portkey $(node -p "require('$tmp/portkey/node_modules/@portkey-ai/gateway/package.json').version") on $portkey_addr"
			return 0
		fi
		sleep 0.2
	done
	say "Portkey skipped: it did not answer chat completions:"
	tail -n 20 "$tmp/portkey.log" >&2
	return 1
}
if [ "$want_portkey" = 1 ]; then start_portkey || true; fi

# --- measure ----------------------------------------------------------------

# The processes whose CPU time is charged to a target: nginx's master and
# workers, slipway's server, Portkey's node, the upstream itself.
nginx_pids=$(pgrep -P "$nginx_pid" | tr '\n' , || true)$nginx_pid

# Targets: path, name, address, URL path, lua script, pids (comma-separated).
targets=(
	"infer upstream $up_a $infer_path infer.lua $up_a_pid"
	"infer nginx $nginx_addr $infer_path infer.lua $nginx_pids"
	"infer slipway $gw_addr $infer_path infer.lua $slipway_pid"
	${own_addr:+"infer own $own_addr $infer_path infer.lua $own_pid"}
	${httputil_addr:+"infer httputil $httputil_addr $infer_path infer.lua $httputil_pid"}
	${direct_addr:+"infer direct $direct_addr $infer_path infer.lua $direct_pid"}
	"chat upstream $up_a $chat_path chat.lua $up_a_pid"
	"chat nginx $nginx_addr $chat_path chat.lua $nginx_pids"
	"chat slipway $gw_addr $chat_path chat.lua $slipway_pid"
	${own_addr:+"chat own $own_addr $chat_path chat.lua $own_pid"}
	${httputil_addr:+"chat httputil $httputil_addr $chat_path chat.lua $httputil_pid"}
	${direct_addr:+"chat direct $direct_addr $chat_path chat.lua $direct_pid"}
)
if [ -n "$portkey_addr" ]; then targets+=("chat portkey $portkey_addr $chat_path portkey.lua $portkey_pid"); fi

# cpu_ticks PIDS: user+system CPU time of the processes (comma-separated),
# in clock ticks, from /proc (all threads of each process).
clk_tck=$(getconf CLK_TCK)
cpu_ticks() {
	local t=0 p
	for p in ${1//,/ }; do
		if [ -r "/proc/$p/stat" ]; then t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); fi
	done
	echo "$t"
}

# parse_wrk FILE: "req/s p50-ms p99-ms errors requests" from wrk --latency output.
parse_wrk() {
	awk '
		function ms(v) {
			if (v ~ /us$/) return v / 1000
			if (v ~ /ms$/) return v + 0
			if (v ~ /s$/) return v * 1000
			if (v ~ /m$/) return v * 60000
			return v + 0
		}
		/Requests\/sec:/ { rps = $2 }
		/ requests in / { n = $1 }
		$1 == "50%" { p50 = ms($2) }
		$1 == "99%" { p99 = ms($2) }
		/Non-2xx or 3xx responses:/ { err += $NF }
		/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
		END { printf "%.0f %.3f %.3f %d %d\n", rps, p50, p99, err, n }' "$1"
}

run_wrk() { # run_wrk DURATION ADDR PATH LUA OUT
	wrk -t"$threads" -c"$conns" -d"$1" --latency -s "$tmp/$4" "http://$2$3" >"$5" 2>&1
}

say "warming up every target ($warmup each)"
for t in "${targets[@]}"; do
	read -r path name addr urlpath script _ <<<"$t"
	run_wrk "$warmup" "$addr" "$urlpath" "$script" "$tmp/warmup.out"
done

results=$tmp/results
: >"$results"
say "measuring: $rounds rounds, wrk -t$threads -c$conns -d$duration --latency per target, interleaved"
for round in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		read -r path name addr urlpath script tpids <<<"$t"
		out=$tmp/wrk-$path-$name-$round.out
		before=$(cpu_ticks "$tpids")
		run_wrk "$duration" "$addr" "$urlpath" "$script" "$out"
		after=$(cpu_ticks "$tpids")
		read -r rps p50 p99 err n < <(parse_wrk "$out")
		# CPU microseconds the target's own processes spent per request.
		cpu=$(awk -v d=$((after - before)) -v hz="$clk_tck" -v n="$n" 'BEGIN { printf "%.0f", (n > 0 ? d / hz * 1e6 / n : 0) }')
		echo "$path $name $round $rps $p50 $p99 $err $cpu" >>"$results"
		printf 'round %d  %-5s %-8s %9s req/s  p50 %7.2f ms  p99 %7.2f ms  %4s CPU us/req  errors %s\n' \
			"$round" "$path" "$name" "$rps" "$p50" "$p99" "$cpu" "$err" >&2
	done
done

# --- report -----------------------------------------------------------------

echo
echo "slipway gateway benchmark: wrk -t$threads -c$conns -d$duration, $rounds rounds interleaved, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)${GATEWAY_GOMAXPROCS:+, GOMAXPROCS=$GATEWAY_GOMAXPROCS for slipway and httputil}"
echo "CPU us/req: CPU time of the target's own processes (nginx master and worker, slipway server, node, the upstream) per request"
echo "httputil: a bare httputil.ReverseProxy, 90/10; direct: a hand-rolled Go proxy, 90/10 (floors, not gateways)"
echo "nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||'), $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}'), $(go version | awk '{print $3}')"
awk -v rounds="$rounds" '
	function median(s,   a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
		k = $1 SUBSEP $2
		if (!(k in seen)) { seen[k] = 1; order[++n] = k }
		rps[k, $3] = $4; p99[k, $3] = $6
		R[k] = R[k] " " $4; P50[k] = P50[k] " " $5; P99[k] = P99[k] " " $6; E[k] += $7; C[k] = C[k] " " $8
	}
	END {
		title["infer"] = "OIP v2: POST /v2/models/bench/infer"
		title["chat"] = "OpenAI: POST /v1/chat/completions"
		for (pi = 1; pi <= 2; pi++) {
			p = pi == 1 ? "infer" : "chat"
			printf "\n%s\n", title[p]
			printf "%-9s", "target"
			for (r = 1; r <= rounds; r++) printf " | round %d req/s   p99", r
			printf " | median req/s    p50    p99 | CPU us/req | errors\n"
			for (i = 1; i <= n; i++) {
				split(order[i], kk, SUBSEP)
				if (kk[1] != p) continue
				k = order[i]
				printf "%-9s", kk[2]
				for (r = 1; r <= rounds; r++) printf " | %13.0f %6.2f", rps[k, r], p99[k, r]
				mr[k] = median(R[k]); m50[k] = median(P50[k]); m99[k] = median(P99[k]); mc[k] = median(C[k])
				printf " | %12.0f %6.2f %6.2f | %10.0f | %d\n", mr[k], m50[k], m99[k], mc[k], E[k]
			}
			s = p SUBSEP "slipway"; x = p SUBSEP "nginx"; pk = p SUBSEP "portkey"; u = p SUBSEP "upstream"
			if ((s in mr) && (x in mr) && mr[x] > 0 && m99[x] > 0)
				printf "slipway/nginx:    throughput %.2fx, p99 %.2fx, CPU per request %.1fx (target: >= 0.8x throughput, <= 1.5x p99)\n", mr[s] / mr[x], m99[s] / m99[x], (mc[x] > 0 ? mc[s] / mc[x] : 0)
			h = p SUBSEP "httputil"
			if ((h in mr) && (x in mr) && mr[x] > 0 && m99[x] > 0)
				printf "httputil/nginx:   throughput %.2fx, p99 %.2fx, CPU per request %.1fx\n", mr[h] / mr[x], m99[h] / m99[x], (mc[x] > 0 ? mc[h] / mc[x] : 0)
			h = p SUBSEP "own"
			if ((h in mr) && (x in mr) && mr[x] > 0 && m99[x] > 0)
				printf "own/nginx:        throughput %.2fx, p99 %.2fx, CPU per request %.1fx (the gateway on its own server, profile harness)\n", mr[h] / mr[x], m99[h] / m99[x], (mc[x] > 0 ? mc[h] / mc[x] : 0)
			if ((h in mr) && (pk in mr) && mr[pk] > 0)
				printf "own/Portkey:      throughput %.1fx, p99 %.2fx\n", mr[h] / mr[pk], m99[h] / m99[pk]
			h = p SUBSEP "direct"
			if ((h in mr) && (x in mr) && mr[x] > 0 && m99[x] > 0)
				printf "direct/nginx:     throughput %.2fx, p99 %.2fx, CPU per request %.1fx\n", mr[h] / mr[x], m99[h] / m99[x], (mc[x] > 0 ? mc[h] / mc[x] : 0)
			if ((s in mr) && (u in mr) && mr[u] > 0)
				printf "slipway/upstream: throughput %.2fx; nginx/upstream %.2fx\n", mr[s] / mr[u], mr[x] / mr[u]
			if ((s in mr) && (pk in mr) && mr[pk] > 0 && m99[s] > 0)
				printf "slipway/Portkey:  throughput %.1fx, p99 %.2fx (Portkey p99 is %.1fx slipway'"'"'s)\n", mr[s] / mr[pk], m99[s] / m99[pk], m99[pk] / m99[s]
			else if (p == "chat" && !(pk in mr))
				printf "Portkey: not measured (see the messages above)\n"
		}
	}' "$results"

# --- profile ----------------------------------------------------------------

if [ "$profile" = 1 ]; then
	profile_dir=${PROFILE_DIR:-$tmp/profiles}
	mkdir -p "$profile_dir"
	for p in infer chat; do
		if [ "$p" = infer ]; then urlpath=$infer_path script=infer.lua; else urlpath=$chat_path script=chat.lua; fi
		env "${gw_env[@]}" "$tmp/profile" -upstream-a "$up_a" -upstream-b "$up_b" -log-level "$log_level" \
			-cpuprofile "$profile_dir/cpu-$p.pprof" -memprofile "$profile_dir/allocs-$p.pprof" \
			>"$tmp/profile-$p.out" 2>"$tmp/profile-$p.log" &
		ppid=$!
		pids+=("$ppid")
		paddr=$(first_line "$tmp/profile-$p.out")
		say "profiling the in-process gateway on $p for $profile_duration"
		run_wrk "$warmup" "$paddr" "$urlpath" "$script" "$tmp/warmup.out"
		run_wrk "$profile_duration" "$paddr" "$urlpath" "$script" "$tmp/wrk-profile-$p.out"
		read -r rps p50 p99 err _ < <(parse_wrk "$tmp/wrk-profile-$p.out")
		kill -TERM "$ppid"
		wait "$ppid" || true
		unset 'pids[-1]'
		echo
		echo "CPU profile of the in-process gateway, $p ($rps req/s, p99 $p99 ms under profiling, errors $err)"
		echo "-- flat"
		go tool pprof -top -nodecount=30 "$tmp/profile" "$profile_dir/cpu-$p.pprof" 2>/dev/null | sed -n '1,40p'
		echo "-- cumulative"
		go tool pprof -top -cum -nodecount=45 "$tmp/profile" "$profile_dir/cpu-$p.pprof" 2>/dev/null | sed -n '6,55p'
		echo "-- allocations (alloc_space), top"
		go tool pprof -sample_index=alloc_space -top -nodecount=20 "$tmp/profile" "$profile_dir/allocs-$p.pprof" 2>/dev/null | sed -n '5,30p'
	done
	if [ -n "${PROFILE_DIR:-}" ]; then cp "$tmp/profile" "$profile_dir/profile.bin"; say "profiles kept in $profile_dir"; fi
fi
