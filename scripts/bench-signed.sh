#!/usr/bin/env bash
# The cost of signing, measured as issue 10 asks: two daemons of the same
# binary with default settings, one with --sign-key, loaded in turn by
# `hostpass bench` (joins, CLIENTS clients, DUR a round, ROUNDS rounds,
# interleaved, each round in the other order, so that the machine's noise
# falls on both). Prints each round
# and the signed/plain ratio of each round and of the sums. Needs bin/hostpass
# (make build) and root (the daemons' sockets); nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/hostpass}
dir=$(mktemp -d /var/tmp/hostpass-bench-signed.XXXXXX)
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait; rm -rf "$dir"' EXIT
"$bin" audit keygen --sign --host bench "$dir/sign.key" >/dev/null
for k in plain signed; do
	extra=()
	[ "$k" = signed ] && extra=(--sign-key "$dir/sign.key")
	"$bin" serve --socket "$dir/$k.sock" --audit-log "$dir/$k/audit.jsonl" --state-dir "$dir/$k-state" \
		--watch=false "${extra[@]}" >"$dir/$k.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 50); do [ -S "$dir/plain.sock" ] && [ -S "$dir/signed.sock" ] && break; sleep 0.1; done
declare -A sum=([plain]=0 [signed]=0)
for i in $(seq "${ROUNDS:-4}"); do
	order=(plain signed)
	[ $((i % 2)) = 0 ] && order=(signed plain)
	for k in "${order[@]}"; do
		out=$("$bin" bench --socket "$dir/$k.sock" --clients "${CLIENTS:-16}" --duration "${DUR:-5s}")
		echo "round $i $k: $out"
		rate=$(sed -n 's/.*rate=\([0-9.]*\)\/s.*/\1/p' <<<"$out")
		eval "r_$k=$rate"
		sum[$k]=$(awk -v a="${sum[$k]}" -v b="$rate" 'BEGIN{print a+b}')
	done
	awk -v p="$r_plain" -v s="$r_signed" -v i="$i" 'BEGIN{printf "round %d signed/plain %.3f\n", i, s/p}'
done
awk -v p="${sum[plain]}" -v s="${sum[signed]}" 'BEGIN{printf "all rounds signed/plain %.3f\n", s/p}'
kill -TERM "${pids[@]}"; wait; pids=()
echo "signed log: $("$bin" audit verify --pubkey "$dir/sign.key.pub" "$dir/signed/" | cut -c1-160)…"
