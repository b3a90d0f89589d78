#!/usr/bin/env bash
# ingest.sh compares slipway's blob ingest (hash + write + fsync + rename of
# a 1 GiB upload into a Local store) with sha256sum on a 1 GiB file: the
# ratio says how close ingest comes to the cost of hashing alone.
#
# Both sides read from the page cache: the file is read once before timing
# sha256sum, and the Go benchmark writes its own file just before it runs.
# Usage: bench/ingest.sh   (from anywhere inside the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

size=$((1 << 30))
file="$tmp/artifact.bin"
echo "writing 1 GiB of random data to $file" >&2
head -c "$size" /dev/urandom >"$file"
cat "$file" >/dev/null # warm the page cache

best=""
for i in 1 2 3; do
	start=$(date +%s.%N)
	sha256sum "$file" >/dev/null
	end=$(date +%s.%N)
	t=$(echo "$end - $start" | bc -l)
	echo "sha256sum run $i: ${t}s" >&2
	if [[ -z "$best" ]] || (($(echo "$t < $best" | bc -l))); then
		best=$t
	fi
done
sha_mbs=$(echo "$size / 1000000 / $best" | bc -l)
rm -f "$file" # free the space before the benchmark writes its own copies

echo "running BenchmarkIngest (3 x 1 GiB)" >&2
out=$(SLIPWAY_BENCH_LARGE=1 go test -run '^$' -bench 'BenchmarkIngest$' -benchtime 3x ./internal/artifact)
echo "$out" >&2
slw_mbs=$(echo "$out" | awk '/^BenchmarkIngest-/ { for (i = 1; i < NF; i++) if ($(i+1) == "MB/s") print $i }')
if [[ -z "$slw_mbs" ]]; then
	echo "no MB/s figure in the benchmark output" >&2
	exit 1
fi

printf 'sha256sum:       %8.1f MB/s (best of 3)\n' "$sha_mbs"
printf 'slipway ingest:  %8.1f MB/s\n' "$slw_mbs"
printf 'ratio slipway/sha256sum: %.2f\n' "$(echo "$slw_mbs / $sha_mbs" | bc -l)"
