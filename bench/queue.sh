#!/usr/bin/env bash
# bench/queue.sh — podkit's work queue against asynq on redis-server, same
# machine, same run, alternating rounds.
#
# Workload: no-op jobs end to end (enqueue → lease → ack) with 8 workers:
#   saturation: JOBS jobs (default 50000) as fast as they go → jobs/s and
#               dispatch latency p50/p99 (enqueue sent → handed to a worker);
#   idle:       1,000 jobs/s for 5 s → dispatch latency p50/p99.
# podkit: `podkit queue` with its durable store on disk (every 201 and every
# ack after the fdatasync that covers it); the driver speaks the HTTP API
# with batch enqueue/lease/ack. asynq v0.25.1 on Debian's redis-server with
# appendonly yes / appendfsync everysec, TaskCheckInterval 10ms, concurrency 8.
#
# Needs: go, redis-server (apt-get install redis-server). Installs nothing.
# Env: ROUNDS (3), JOBS (50000), BENCH_DIR (a directory on a real disk;
# default /var/tmp), PODKIT_PORT (18700), REDIS_PORT (18701).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-50000}
PODKIT_PORT=${PODKIT_PORT:-18700}
REDIS_PORT=${REDIS_PORT:-18701}
BENCH_DIR=${BENCH_DIR:-/var/tmp}

command -v go >/dev/null || { echo "bench/queue.sh: go is not installed" >&2; exit 1; }
REDIS=$(command -v redis-server || true)
[ -n "$REDIS" ] || { echo "bench/queue.sh: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

work=$(mktemp -d "$BENCH_DIR/podkit-bench-queue.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

echo "building podkit and the load driver..." >&2
CGO_ENABLED=0 go build -o "$work/podkit" ./cmd/podkit
(cd bench/queue && go build -o "$work/driver" .)

wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "bench/queue.sh: nothing listens on port $1" >&2
	exit 1
}

run_podkit() {
	local dir="$work/podkit-data-$1"
	"$work/podkit" queue --listen "127.0.0.1:$PODKIT_PORT" --data-dir "$dir" --admin-addr off \
		--drain-delay 0s --log-level warn >"$work/podkit-$1.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_port "$PODKIT_PORT"
	"$work/driver" -system podkit -url "http://127.0.0.1:$PODKIT_PORT" -jobs "$JOBS"
	kill "$pid"; wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}

run_asynq() {
	local dir="$work/redis-$1"
	mkdir -p "$dir"
	"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes --appendfsync everysec \
		--daemonize no --logfile "$work/redis-$1.log" &
	local pid=$!
	pids+=("$pid")
	wait_port "$REDIS_PORT"
	"$work/driver" -system asynq -redis "127.0.0.1:$REDIS_PORT" -jobs "$JOBS"
	kill "$pid"; wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}

: >"$work/results"
for r in $(seq 1 "$ROUNDS"); do
	if (( r % 2 )); then order="podkit asynq"; else order="asynq podkit"; fi
	for sys in $order; do
		line=$("run_$sys" "$r")
		echo "round $r: $line load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
		echo "$r $line" >>"$work/results"
	done
done

# Medians of the per-round ratios, and their spread ((max-min)/median).
python3 - "$work/results" "$ROUNDS" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    r, kv = parts[0], dict(p.split("=", 1) for p in parts[1:])
    rows.setdefault(r, {})[kv["system"]] = {k: float(v) for k, v in kv.items() if k != "system"}
def med(xs): return statistics.median(xs)
ratios = {"jobs_per_s": [], "sat_p99": [], "idle_p99": []}
pk = {"jobs_per_s": [], "sat_p50_ms": [], "sat_p99_ms": [], "idle_p50_ms": [], "idle_p99_ms": []}
aq = {k: [] for k in pk}
for r, s in sorted(rows.items()):
    p, a = s["podkit"], s["asynq"]
    ratios["jobs_per_s"].append(p["jobs_per_s"] / a["jobs_per_s"])
    ratios["sat_p99"].append(p["sat_p99_ms"] / a["sat_p99_ms"] if a["sat_p99_ms"] else 0)
    ratios["idle_p99"].append(p["idle_p99_ms"] / a["idle_p99_ms"] if a["idle_p99_ms"] else 0)
    for k in pk:
        pk[k].append(p[k]); aq[k].append(a[k])
m = med(ratios["jobs_per_s"])
spread = (max(ratios["jobs_per_s"]) - min(ratios["jobs_per_s"])) / m if m else 0
print("podkit medians: jobs_per_s=%.0f sat_p50_ms=%.2f sat_p99_ms=%.2f idle_p50_ms=%.2f idle_p99_ms=%.2f" % tuple(med(pk[k]) for k in pk))
print("asynq  medians: jobs_per_s=%.0f sat_p50_ms=%.2f sat_p99_ms=%.2f idle_p50_ms=%.2f idle_p99_ms=%.2f" % tuple(med(aq[k]) for k in aq))
print("ratio podkit/asynq jobs_per_s=%.2f sat_p99=%.2f idle_p99=%.2f (%s rounds, spread %.2f)" % (
    m, med(ratios["sat_p99"]), med(ratios["idle_p99"]), sys.argv[2], spread))
PY
