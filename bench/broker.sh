#!/usr/bin/env bash
# bench/broker.sh — podkit broker against HAProxy 2.6.
#
# The same backends for everyone: two redis-servers, and two nginx server
# blocks serving a 1 KiB file. HAProxy (one process, Debian's package,
# nbthread 2) has a `mode tcp` frontend over the two Redis servers and a
# `mode http` one over the two nginx blocks, both `balance roundrobin`
# with health checks on (`option redis-check`, `option httpchk GET /1k`).
# podkit broker runs the same two upstreams (tcp with --health-check
# redis, http with --health-check http:/1k, round robin), one process
# each. In alternating rounds (direct, then HAProxy and podkit in turns):
#
#   redis-P1   redis-benchmark SET/GET, 50 clients, no pipelining
#   redis-P16  the same with -P 16
#   redis-k0   the same with -k 0: a new connection for every request
#   http       wrk -t2 -c50 keep-alive, GET of the 1 KiB file
#
# "direct" is one redis-server / one nginx block with no proxy: the
# physical limit.
#
# Usage: bench/broker.sh     (ROUNDS=3 REQUESTS=100000 PREQUESTS=1000000
#                             KREQUESTS=10000 DURATION=5s CLIENTS=50)
#        PODKIT=bin/podkit bench/broker.sh
#        WORKLOADS="redis-P1 http" bench/broker.sh   (a subset)
# Needs: haproxy, redis-server, redis-tools (redis-benchmark), nginx, wrk
# (apt-get install haproxy redis-server redis-tools nginx wrk), python3,
# and the podkit binary (make build). Installs nothing.
#
# Output: one line per run (ops/s, p99, and the proxy's CPU time per
# request), the medians, then machine-readable ratio lines
# `ratio podkit/haproxy WORKLOAD rps=.. p99=.. cpu=..` (p99 and cpu: lower
# is better) and `ratio podkit/direct ...`; the last line is the
# unpipelined Redis ratio against HAProxy.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-100000}
PREQUESTS=${PREQUESTS:-1000000}
KREQUESTS=${KREQUESTS:-10000}
DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-50}
WORKLOADS=${WORKLOADS:-redis-P1 redis-P16 redis-k0 http}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PODKIT=${PODKIT:-$root/bin/podkit}

die() { echo "bench/broker.sh: $*" >&2; exit 1; }
find_bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }
HAPROXY=$(find_bin haproxy); [ -n "$HAPROXY" ] || die "haproxy not installed (apt-get install haproxy)"
REDIS=$(find_bin redis-server); [ -n "$REDIS" ] || die "redis-server not installed (apt-get install redis-server)"
RB=$(find_bin redis-benchmark); [ -n "$RB" ] || die "redis-benchmark not installed (apt-get install redis-tools)"
NGINX=$(find_bin nginx); [ -n "$NGINX" ] || die "nginx not installed (apt-get install nginx)"
WRK=$(find_bin wrk); [ -n "$WRK" ] || die "wrk not installed (apt-get install wrk)"
command -v python3 >/dev/null 2>&1 || die "python3 not installed"
[ -x "$PODKIT" ] || die "podkit binary $PODKIT missing (run make build, or set PODKIT=)"
"$PODKIT" help broker >/dev/null 2>&1 || die "$PODKIT has no broker command"
hv=$("$HAPROXY" -v 2>/dev/null | sed -n 1p)
case $hv in *"version 2.6"*) ;; *) echo "bench/broker.sh: note: the peer is meant to be HAProxy 2.6; this is: $hv" >&2 ;; esac

work=$(mktemp -d /tmp/podkit-bench-broker.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "bench/broker.sh: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  die "nothing listening on port $1 ($2)"
}

R1=$(port); R2=$(port); H1=$(port); H2=$(port)
HR=$(port); HH=$(port); PR=$(port); PH=$(port); PA1=$(port); PA2=$(port)

# The backends.
for p in $R1 $R2; do
  "$REDIS" --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile "$work/redis-$p.log" &
  pids+=($!)
done
mkdir -p "$work/www"
head -c 768 /dev/urandom | base64 -w0 >"$work/www/1k"   # 1024 bytes
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$work/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $work/nginx.pid;
error_log stderr warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/b-body;
    proxy_temp_path $work/b-proxy;
    fastcgi_temp_path $work/b-fastcgi;
    uwsgi_temp_path $work/b-uwsgi;
    scgi_temp_path $work/b-scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    server { listen 127.0.0.1:$H1; root $work/www; }
    server { listen 127.0.0.1:$H2; root $work/www; }
}
EOF
"$NGINX" -p "$work" -e stderr -c "$work/nginx.conf" &
pids+=($!)
for p in $R1 $R2 $H1 $H2; do wait_port "$p" backend; done

# HAProxy: round robin, checks on, the timeouts podkit's defaults have.
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 8000
    nbthread 2
defaults
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    timeout check 2s
frontend redis
    mode tcp
    bind 127.0.0.1:$HR
    default_backend redis
backend redis
    mode tcp
    balance roundrobin
    option redis-check
    server r1 127.0.0.1:$R1 check inter 5s rise 2 fall 3
    server r2 127.0.0.1:$R2 check inter 5s rise 2 fall 3
frontend web
    mode http
    bind 127.0.0.1:$HH
    default_backend web
backend web
    mode http
    balance roundrobin
    option httpchk GET /1k
    server h1 127.0.0.1:$H1 check inter 5s rise 2 fall 3
    server h2 127.0.0.1:$H2 check inter 5s rise 2 fall 3
EOF
"$HAPROXY" -c -f "$work/haproxy.cfg" >/dev/null || die "haproxy refuses its configuration"
"$HAPROXY" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=($haproxy_pid)

"$PODKIT" broker --name redis --listen "127.0.0.1:$PR" --source "static:127.0.0.1:$R1,127.0.0.1:$R2" \
  --mode tcp --balance round-robin --health-check redis \
  --admin-addr "127.0.0.1:$PA1" --log-level warn --drain-delay 0s >"$work/podkit-tcp.log" 2>&1 &
ptcp_pid=$!
pids+=($ptcp_pid)
"$PODKIT" broker --name web --listen "127.0.0.1:$PH" --source "static:127.0.0.1:$H1,127.0.0.1:$H2" \
  --mode http --balance round-robin --health-check http:/1k \
  --admin-addr "127.0.0.1:$PA2" --log-level warn --drain-delay 0s >"$work/podkit-http.log" 2>&1 &
phttp_pid=$!
pids+=($phttp_pid)
for p in $HR $HH $PR $PH; do wait_port "$p" proxy; done
# Ready: every upstream has usable endpoints.
for a in $PA1 $PA2; do
  for _ in $(seq 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$a/readyz" 2>/dev/null && break
    sleep 0.05
  done
done
has() { [[ " $WORKLOADS " == *" $1 "* ]]; }
if has http; then
  for u in "127.0.0.1:$H1" "127.0.0.1:$HH" "127.0.0.1:$PH"; do
    curl -sf -m 10 -o /dev/null "http://$u/1k" || die "GET http://$u/1k fails"
  done
fi

TICK=$(getconf CLK_TCK)
cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# rb PORT [args]: "ops/s p99_ms" averaged over SET and GET.
rb() {
  local p=$1; shift
  "$RB" -h 127.0.0.1 -p "$p" -t set,get -c "$CLIENTS" -r 100000 --csv "$@" 2>/dev/null |
    awk -F'"' '$2=="SET"||$2=="GET" {s+=$4; l+=$14; n++} END {if (n==2) printf "%.0f %.3f\n", s/n, l/n; else print "0 0"}'
}
# web URL: "req/s p99_ms"
web() {
  local out rps p99
  out=$("$WRK" -t2 -c"$CLIENTS" -d"$DURATION" --latency "$1" 2>&1) || { echo "0 0"; return; }
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    echo "bench/broker.sh: wrk $1: $(grep 'Non-2xx\|Socket errors' <<<"$out" | tr '\n' ' ')" >&2
  fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "${rps:-0} ${p99:-0}"
}

# run WORKLOAD TARGET PID cmd...: runs the load, records rps, p99 and the
# proxy's CPU time per request (µs).
run() {
  local w=$1 t=$2 pid=$3; shift 3
  local c0=0 c1=0 t0 t1 rps p99 cpu="-"
  [ -n "$pid" ] && c0=$(cputicks "$pid")
  t0=$(date +%s.%N)
  read -r rps p99 < <("$@")
  t1=$(date +%s.%N)
  if [ -n "$pid" ]; then
    c1=$(cputicks "$pid")
    cpu=$(python3 -c "
r=$rps*($t1-$t0)
print(f'{($c1-$c0)/$TICK*1e6/r:.2f}' if r>0 else 0)")
    echo "$cpu" >>"$work/$w-$t.cpu"
  fi
  echo "$rps" >>"$work/$w-$t.rps"
  echo "$p99" >>"$work/$w-$t.p99"
  printf '%-10s %-8s %10.0f ops/s  p99 %7.3f ms  cpu %6s us/req  load %s\n' "$w" "$t" "$rps" "$p99" "$cpu" "$(load1)"
}
alive() {
  kill -0 "$haproxy_pid" 2>/dev/null || { tail -20 "$work/haproxy.log" >&2; die "haproxy exited"; }
  kill -0 "$ptcp_pid" 2>/dev/null || { tail -20 "$work/podkit-tcp.log" >&2; die "podkit broker (tcp) exited"; }
  kill -0 "$phttp_pid" 2>/dev/null || { tail -20 "$work/podkit-http.log" >&2; die "podkit broker (http) exited"; }
}

echo "start: $(uptime)"
echo "haproxy: $hv"
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  if [ $((r % 2)) = 1 ]; then order=(direct haproxy podkit); else order=(direct podkit haproxy); fi
  for t in "${order[@]}"; do
    alive
    case $t in
      direct) rp=$R1 hp=$H1 tp="" hpid="" ;;
      haproxy) rp=$HR hp=$HH tp=$haproxy_pid hpid=$haproxy_pid ;;
      podkit) rp=$PR hp=$PH tp=$ptcp_pid hpid=$phttp_pid ;;
    esac
    has redis-P1 && run redis-P1 "$t" "$tp" rb "$rp" -n "$REQUESTS"
    has redis-P16 && run redis-P16 "$t" "$tp" rb "$rp" -n "$PREQUESTS" -P 16
    has redis-k0 && run redis-k0 "$t" "$tp" rb "$rp" -n "$KREQUESTS" -k 0
    has http && run http "$t" "$hpid" web "http://127.0.0.1:$hp/1k"
  done
done
echo "end: $(uptime)"

# ratio A B KIND: median of the per-round ratios A/B, and the spread
# (max-min)/median.
ratio() {
  python3 - "$work/$1" "$work/$2" <<'EOF'
import sys, statistics
a = [float(x) for x in open(sys.argv[1]).read().split()]
b = [float(x) for x in open(sys.argv[2]).read().split()]
r = [x / y for x, y in zip(a, b) if y > 0]
if not r:
    print("n/a n/a")
else:
    m = statistics.median(r)
    print(f"{m:.2f} {(max(r) - min(r)) / m if m else 0:.2f}")
EOF
}
med() { python3 -c 'import sys,statistics; v=[float(x) for x in open(sys.argv[1]).read().split()]; print(f"{statistics.median(v):.{int(sys.argv[2])}f}")' "$work/$1" "$2"; }

echo
for w in redis-P1 redis-P16 redis-k0 http; do
  has "$w" || continue
  for t in direct haproxy podkit; do
    printf 'median %-10s %-8s %10s ops/s  p99 %7s ms' "$w" "$t" "$(med "$w-$t.rps" 0)" "$(med "$w-$t.p99" 3)"
    [ "$t" != direct ] && printf '  cpu %6s us/req' "$(med "$w-$t.cpu" 2)"
    echo
  done
done
echo
for w in redis-P16 redis-k0 http redis-P1; do
  has "$w" || continue
  read -r d ds < <(ratio "$w-podkit.rps" "$w-direct.rps")
  read -r hd hds < <(ratio "$w-haproxy.rps" "$w-direct.rps")
  echo "ratio podkit/direct $w rps=$d (haproxy/direct $hd) ($ROUNDS rounds, spread $ds)"
done
for w in redis-P16 redis-k0 http redis-P1; do
  has "$w" || continue
  read -r x xs < <(ratio "$w-podkit.rps" "$w-haproxy.rps")
  read -r p ps < <(ratio "$w-podkit.p99" "$w-haproxy.p99")
  read -r c cs < <(ratio "$w-podkit.cpu" "$w-haproxy.cpu")
  echo "ratio podkit/haproxy $w rps=$x p99=$p cpu=$c ($ROUNDS rounds, spread rps $xs p99 $ps cpu $cs)"
done
