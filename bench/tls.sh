#!/usr/bin/env bash
# bench/tls.sh — podkit tls-proxy against nginx TLS termination and
# ghostunnel.
#
# One nginx (Debian's package) serves a 1 KiB file on plain HTTP: the
# backend, the same for everyone. A second nginx terminates TLS in front of
# it (the peer: upstream keep-alive, X-Forwarded-* headers). It is a
# separate instance because a pod's legacy app is a separate process: an
# nginx proxying to a server block of its own workers would skip the
# process hop that every sidecar pays. podkit tls-proxy runs in --mode
# http and --mode tcp in front of the same backend, with the same ECDSA
# P-256 certificate; ghostunnel (server mode, the layer-4 peer of --mode
# tcp) too, built from the pinned module in bench/ghostunnel. wrk (-t2 -c50,
# keep-alive, 1 KiB) loads each in alternating rounds; a second phase sends
# "Connection: close" so every request is a new TLS handshake (sessions may
# resume, for both). The direct (plain HTTP, no proxy) figure is the
# physical limit.
#
# Usage: bench/tls.sh            (ROUNDS=5 DURATION=10s CONNS=50 THREADS=2)
#        PODKIT=bin/podkit bench/tls.sh
#        GHOSTUNNEL=/path/to/ghostunnel bench/tls.sh   (a binary of your own)
#        GHOSTUNNEL=skip bench/tls.sh                  (no ghostunnel rounds)
# Needs: wrk, nginx, openssl (apt-get install wrk nginx openssl), the
# podkit binary (make build) and go, to build ghostunnel from
# bench/ghostunnel (go.mod/go.sum pin the version; the first build
# downloads its modules through the Go module proxy into the module cache,
# later ones are offline). h2load (apt-get install nghttp2-client) for the
# HTTP/2 phase, which is skipped with a note without it. Installs nothing.
#
# Output: one line per run, then the medians and the machine-readable
# ratio lines; the last line is the http-mode ratio against nginx.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PODKIT=${PODKIT:-$root/bin/podkit}

die() { echo "bench/tls.sh: $*" >&2; exit 1; }
for b in wrk nginx openssl; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || die "$b not installed (apt-get install $b)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$PODKIT" ] || die "podkit binary $PODKIT missing (run make build, or set PODKIT=)"
"$PODKIT" help tls-proxy >/dev/null 2>&1 || die "$PODKIT has no tls-proxy command"
GHOSTUNNEL=${GHOSTUNNEL:-}
if [ "$GHOSTUNNEL" != skip ] && [ -z "$GHOSTUNNEL" ]; then
  command -v go >/dev/null 2>&1 || die "go not found: it builds ghostunnel from bench/ghostunnel (or set GHOSTUNNEL=/path or GHOSTUNNEL=skip)"
fi

work=$(mktemp -d /tmp/podkit-bench-tls.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { # a free loopback port
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}
BACKEND=$(port); NGINX_TLS=$(port); PK_HTTP=$(port); PK_TCP=$(port); ADMIN1=$(port); ADMIN2=$(port); GT=$(port)

# ghostunnel: the pinned release from bench/ghostunnel's own module (it
# never enters podkit's go.mod), static like podkit (CGO_ENABLED=0).
if [ -z "$GHOSTUNNEL" ]; then
  gtver=$(awk '$1 == "github.com/ghostunnel/ghostunnel" {print $2}' "$here/ghostunnel/go.mod")
  echo "building ghostunnel $gtver from bench/ghostunnel (go build, CGO_ENABLED=0)"
  if ! out=$(cd "$here/ghostunnel" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
    -ldflags "-X main.version=$gtver" -o "$work/ghostunnel" github.com/ghostunnel/ghostunnel 2>&1); then
    die "ghostunnel $gtver does not build from bench/ghostunnel: $(tail -1 <<<"$out") (GHOSTUNNEL=skip runs without it)"
  fi
  GHOSTUNNEL=$work/ghostunnel
fi
if [ "$GHOSTUNNEL" != skip ]; then
  [ -x "$GHOSTUNNEL" ] || die "GHOSTUNNEL=$GHOSTUNNEL is not an executable (GHOSTUNNEL=skip runs without it)"
  "$GHOSTUNNEL" --version >/dev/null 2>&1 || die "$GHOSTUNNEL --version fails: not a ghostunnel binary?"
fi

# Certificate: ECDSA P-256, as a modern deployment would use.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1 || die "openssl could not make a certificate"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/1k"
mkdir -p "$work/www" && mv "$work/1k" "$work/www/1k"

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
for conf in backend nginx; do
  sed -e "s|{{USER}}|$user_line|" -e "s|{{DIR}}|$work|g" -e "s|{{BACKEND}}|$BACKEND|g" \
    -e "s|{{TLS}}|$NGINX_TLS|g" "$here/tls/$conf.conf" >"$work/$conf.conf"
  "$NGINX" -p "$work" -e stderr -c "$work/$conf.conf" &
  pids+=($!)
done

"$PODKIT" tls-proxy --mode http --listen 127.0.0.1:$PK_HTTP --target 127.0.0.1:$BACKEND \
  --cert "$work/tls.crt" --key "$work/tls.key" --admin-addr 127.0.0.1:$ADMIN1 --log-level warn --drain-delay 0s &
pids+=($!); PID_HTTP=$!
"$PODKIT" tls-proxy --mode tcp --listen 127.0.0.1:$PK_TCP --target 127.0.0.1:$BACKEND \
  --cert "$work/tls.crt" --key "$work/tls.key" --admin-addr 127.0.0.1:$ADMIN2 --log-level warn --drain-delay 0s &
pids+=($!); PID_TCP=$!
PID_GT=""
if [ "$GHOSTUNNEL" != skip ]; then
  # Server mode, the same certificate, no client certificates (as podkit
  # here), connection logs off (podkit runs at --log-level warn).
  "$GHOSTUNNEL" server --listen 127.0.0.1:$GT --target 127.0.0.1:$BACKEND \
    --cert "$work/tls.crt" --key "$work/tls.key" --disable-authentication --quiet=all &
  pids+=($!); PID_GT=$!
fi

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listening on 127.0.0.1:$1 ($2)"
}
wait_port $BACKEND "nginx backend"; wait_port $NGINX_TLS "nginx TLS"
wait_port $PK_HTTP "podkit http"; wait_port $PK_TCP "podkit tcp"
[ -n "$PID_GT" ] && wait_port $GT ghostunnel

# The processes that do each proxy's work, for CPU time per request: the
# TLS nginx's master and workers; podkit's process. (The backend's CPU is
# the same for everyone and not counted.)
NGINX_TLS_PIDS="$(cat "$work/tls.pid") $(pgrep -P "$(cat "$work/tls.pid")" | tr '\n' ' ')"
declare -A PIDS=([nginx]="$NGINX_TLS_PIDS" [podkit-http]="$PID_HTTP" [podkit-tcp]="$PID_TCP" [ghostunnel]="$PID_GT" [direct]="")
TICK=$(getconf CLK_TCK)
cputicks() { # sum of utime+stime over every thread of the pids
  local t=0 p f a
  for p in "$@"; do
    for f in /proc/"$p"/task/*/stat; do
      read -r -a a <"$f" 2>/dev/null || continue
      # Fields after the ")" of comm: utime is field 14, stime 15.
      t=$((t + a[13] + a[14]))
    done
  done
  echo $t
}

declare -A URL=(
  [direct]="http://127.0.0.1:$BACKEND/1k"
  [nginx]="https://127.0.0.1:$NGINX_TLS/1k"
  [podkit-http]="https://127.0.0.1:$PK_HTTP/1k"
  [podkit-tcp]="https://127.0.0.1:$PK_TCP/1k"
  [ghostunnel]="https://127.0.0.1:$GT/1k"
)
peers=(nginx podkit-http podkit-tcp)
[ -n "$PID_GT" ] && peers+=(ghostunnel)
if command -v curl >/dev/null; then
  for n in direct "${peers[@]}"; do
    curl -sfk -o /dev/null "${URL[$n]}" || die "$n (${URL[$n]}) does not answer"
  done
fi

# run NAME [extra wrk args] -> "rps p99_ms cpu_us_per_request errors"
run() {
  local out rps p99 errs t0 t1 cpu
  t0=$(cputicks ${PIDS[$1]})
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${@:2}" "${URL[$1]}" 2>&1) || die "wrk failed: $out"
  t1=$(cputicks ${PIDS[$1]})
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  local secs=${DURATION%s}
  cpu=$(python3 -c "print(f'{($t1-$t0)/$TICK*1e6/max(1.0,$rps*$secs):.1f}')")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  echo "$rps $p99 $cpu ${errs:-}"
}

# The 1-minute load average after each run: other work on the same
# cores shows in the tail latencies first.
load1() { cut -d' ' -f1 /proc/loadavg; }
echo "start: $(uptime)"

declare -A KA_RPS KA_P99 KA_CPU HS_RPS HS_CPU
for r in $(seq "$ROUNDS"); do
  # Alternate the order each round so drift hits everyone alike.
  order=("${peers[@]}" direct)
  if [ $((r % 2)) = 0 ]; then
    order=(direct); for ((i = ${#peers[@]} - 1; i >= 0; i--)); do order+=("${peers[$i]}"); done
  fi
  for n in "${order[@]}"; do
    read -r rps p99 cpu errs < <(run "$n")
    KA_RPS[$n]+="$rps "; KA_P99[$n]+="$p99 "; KA_CPU[$n]+="$cpu "
    printf 'round %d keep-alive  %-12s %10.0f req/s  p99 %7.2f ms  cpu %6.1f us/req  load %s %s\n' "$r" "$n" "$rps" "$p99" "$cpu" "$(load1)" "$errs"
  done
  for n in "${order[@]}"; do
    [ "$n" = direct ] && continue
    read -r rps p99 cpu errs < <(run "$n" -H "Connection: close")
    HS_RPS[$n]+="$rps "; HS_CPU[$n]+="$cpu "
    printf 'round %d handshakes  %-12s %10.0f conn/s  p99 %7.2f ms  cpu %6.1f us/conn  load %s %s\n' "$r" "$n" "$rps" "$p99" "$cpu" "$(load1)" "$errs"
  done
done

# HTTP/2: h2load, 50 connections x 10 streams, nginx vs podkit http mode.
declare -A H2_RPS
if command -v h2load >/dev/null; then
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 0 ]; then h2order=(podkit-http nginx); else h2order=(nginx podkit-http); fi
    for n in "${h2order[@]}"; do
      out=$(h2load -c"$CONNS" -m10 -t"$THREADS" -D "${DURATION%s}" "${URL[$n]}" 2>&1) || die "h2load failed: $out"
      rps=$(awk '/^finished in/ {print $4}' <<<"$out")
      fails=$(awk '/^requests:/ {print $10}' <<<"$out")
      H2_RPS[$n]+="$rps "
      printf 'round %d http/2      %-12s %10.0f req/s  (%s failed)\n' "$r" "$n" "$rps" "${fails:-?}"
    done
  done
else
  echo "http/2 phase skipped: h2load not installed (apt-get install nghttp2-client)"
fi

# median and spread (max-min)/median of per-round ratios a/b.
ratio() { # "a1 a2 ..." "b1 b2 ..."
  python3 - "$1" "$2" <<'EOF'
import sys, statistics
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
r = [x / y for x, y in zip(a, b) if y > 0]
m = statistics.median(r)
print(f"{m:.2f} {(max(r) - min(r)) / m:.2f}")
EOF
}
med() { python3 -c 'import sys,statistics; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.0f}")' $1; }
medf() { python3 -c 'import sys,statistics; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' $1; }

echo
echo "end: $(uptime)"
for n in direct "${peers[@]}"; do
  printf 'median %-12s keep-alive %6s req/s p99 %6s ms' "$n" "$(med "${KA_RPS[$n]}")" "$(medf "${KA_P99[$n]}")"
  [ "$n" != direct ] && printf ' cpu %6s us/req   handshakes %6s conn/s cpu %6s us/conn' \
    "$(medf "${KA_CPU[$n]}")" "$(med "${HS_RPS[$n]}")" "$(medf "${HS_CPU[$n]}")"
  echo
done
echo
read -r tr ts < <(ratio "${KA_RPS[podkit-tcp]}" "${KA_RPS[nginx]}")
read -r tp tps < <(ratio "${KA_P99[podkit-tcp]}" "${KA_P99[nginx]}")
read -r th ths < <(ratio "${HS_RPS[podkit-tcp]}" "${HS_RPS[nginx]}")
read -r hh hhs < <(ratio "${HS_RPS[podkit-http]}" "${HS_RPS[nginx]}")
read -r dr drs < <(ratio "${KA_RPS[podkit-http]}" "${KA_RPS[direct]}")
read -r hc hcs < <(ratio "${KA_CPU[podkit-http]}" "${KA_CPU[nginx]}")
read -r tc tcs < <(ratio "${KA_CPU[podkit-tcp]}" "${KA_CPU[nginx]}")
read -r hhc hhcs < <(ratio "${HS_CPU[podkit-http]}" "${HS_CPU[nginx]}")
echo "ratio cpu-per-request podkit-http/nginx keep-alive=$hc handshake=$hhc podkit-tcp/nginx keep-alive=$tc ($ROUNDS rounds, spread $hcs)"
echo "ratio podkit-http/direct rps=$dr ($ROUNDS rounds, spread $drs)"
echo "ratio podkit-tcp/nginx rps=$tr p99=$tp handshakes=$th ($ROUNDS rounds, spread $ts)"
if [ -n "$PID_GT" ]; then
  read -r gr gs < <(ratio "${KA_RPS[podkit-tcp]}" "${KA_RPS[ghostunnel]}")
  read -r gp gps < <(ratio "${KA_P99[podkit-tcp]}" "${KA_P99[ghostunnel]}")
  read -r gh ghs < <(ratio "${HS_RPS[podkit-tcp]}" "${HS_RPS[ghostunnel]}")
  read -r gc gcs < <(ratio "${KA_CPU[podkit-tcp]}" "${KA_CPU[ghostunnel]}")
  read -r gn gns < <(ratio "${KA_RPS[ghostunnel]}" "${KA_RPS[nginx]}")
  echo "ratio ghostunnel/nginx rps=$gn ($ROUNDS rounds, spread $gns)"
  echo "ratio cpu-per-request podkit-tcp/ghostunnel keep-alive=$gc ($ROUNDS rounds, spread $gcs)"
  echo "ratio podkit-tcp/ghostunnel rps=$gr p99=$gp handshakes=$gh ($ROUNDS rounds, spread $gs; p99 $gps, handshakes $ghs)"
else
  echo "ratio podkit-tcp/ghostunnel skipped: GHOSTUNNEL=skip"
fi
echo "ratio podkit-http/nginx handshakes=$hh ($ROUNDS rounds, spread $hhs)"
if [ -n "${H2_RPS[nginx]:-}" ]; then
  read -r h2r h2s < <(ratio "${H2_RPS[podkit-http]}" "${H2_RPS[nginx]}")
  echo "ratio podkit-http/nginx http2 rps=$h2r ($ROUNDS rounds, spread $h2s)"
fi
read -r hr hs < <(ratio "${KA_RPS[podkit-http]}" "${KA_RPS[nginx]}")
read -r hp hps < <(ratio "${KA_P99[podkit-http]}" "${KA_P99[nginx]}")
echo "ratio podkit/nginx rps=$hr p99=$hp ($ROUNDS rounds, spread $hs)"
