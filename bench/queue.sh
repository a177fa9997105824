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
# AUTH=tls-token or AUTH=mtls adds a third system to every round,
# podkit_auth: the same coordinator serving its API over TLS with a bearer
# token (every request carries it, every token checked), or over mutual
# TLS with an allow-listed client certificate; the summary then adds the
# cost of the API security as podkit_auth/podkit (certificates made with
# openssl, ECDSA P-256).
#
# Needs: go, redis-server (apt-get install redis-server), openssl for AUTH.
# Installs nothing.
# Env: ROUNDS (3), JOBS (50000), BENCH_DIR (a directory on a real disk;
# default /var/tmp), PODKIT_PORT (18700), REDIS_PORT (18701), AUTH (off).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-50000}
PODKIT_PORT=${PODKIT_PORT:-18700}
REDIS_PORT=${REDIS_PORT:-18701}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
AUTH=${AUTH:-off}
case "$AUTH" in off|tls-token|mtls) ;; *) echo "bench/queue.sh: AUTH=$AUTH is not off, tls-token or mtls" >&2; exit 2;; esac

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

# make_auth writes a CA, the coordinator's certificate, a client
# certificate (CN bench) and a token file into $work/auth.
make_auth() {
	local d="$work/auth"
	mkdir -p "$d"
	(
		cd "$d"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
			-keyout ca.key -out ca.crt 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext -out server.crt 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench -keyout client.key -out client.csr 2>/dev/null
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out client.crt 2>/dev/null
		tok=$(head -c 32 /dev/urandom | base64)
		printf '%s\n' "$tok" >client.token
		printf 'bench producer,worker,admin %s\n' "$tok" >tokens
		chmod 600 ./*.key tokens client.token
	)
}

run_podkit_auth() {
	local dir="$work/podkit-auth-data-$1" d="$work/auth"
	local server=(--tls-cert "$d/server.crt" --tls-key "$d/server.key")
	local client=(-ca "$d/ca.crt")
	if [ "$AUTH" = tls-token ]; then
		server+=(--token-file "$d/tokens")
		client+=(-token-file "$d/client.token")
	else
		server+=(--client-ca "$d/ca.crt" --allow-cn "producer,worker,admin=bench")
		client+=(-cert "$d/client.crt" -key "$d/client.key")
	fi
	"$work/podkit" queue --listen "127.0.0.1:$PODKIT_PORT" --data-dir "$dir" --admin-addr off \
		--drain-delay 0s --log-level warn "${server[@]}" >"$work/podkit-auth-$1.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_port "$PODKIT_PORT"
	"$work/driver" -system podkit -label podkit_auth -url "https://127.0.0.1:$PODKIT_PORT" -jobs "$JOBS" "${client[@]}"
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
[ "$AUTH" = off ] || make_auth
for r in $(seq 1 "$ROUNDS"); do
	if (( r % 2 )); then order="podkit asynq"; else order="asynq podkit"; fi
	[ "$AUTH" = off ] || if (( r % 2 )); then order="podkit_auth $order"; else order="$order podkit_auth"; fi
	for sys in $order; do
		line=$("run_$sys" "$r")
		echo "round $r: $line load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
		echo "$r $line" >>"$work/results"
	done
done

# Medians of the per-round ratios, and their spread ((max-min)/median).
python3 - "$work/results" "$ROUNDS" "$AUTH" <<'PY'
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
if sys.argv[3] != "off":
    au = {k: [s["podkit_auth"][k] for s in rows.values()] for k in pk}
    rp = [s["podkit_auth"]["jobs_per_s"] / s["podkit"]["jobs_per_s"] for s in rows.values()]
    ra = [s["podkit_auth"]["jobs_per_s"] / s["asynq"]["jobs_per_s"] for s in rows.values()]
    r99 = [s["podkit_auth"]["idle_p99_ms"] / s["podkit"]["idle_p99_ms"] if s["podkit"]["idle_p99_ms"] else 0 for s in rows.values()]
    print("podkit_auth (%s) medians: jobs_per_s=%.0f sat_p50_ms=%.2f sat_p99_ms=%.2f idle_p50_ms=%.2f idle_p99_ms=%.2f" % ((sys.argv[3],) + tuple(med(au[k]) for k in pk)))
    print("ratio podkit_auth/podkit jobs_per_s=%.2f idle_p99=%.2f; podkit_auth/asynq jobs_per_s=%.2f (spread %.2f)" % (
        med(rp), med(r99), med(ra), (max(rp) - min(rp)) / med(rp) if med(rp) else 0))
PY
