#!/usr/bin/env bash
# bench/shard.sh — podkit shard against nutcracker (twemproxy).
#
# Two redis-server shards; one nutcracker.yml (ketama, fnv1a_64) read by
# both nutcracker and podkit shard, which differ only in their listen
# port. redis-benchmark (SET/GET, 50 clients, keys spread over 100k names)
# loads, in alternating rounds: one redis directly (the physical limit),
# nutcracker, podkit — without pipelining and with -P 16. Then the same
# for memcached with bench/cmd/mcbench (50 connections, half sets).
#
# Usage: bench/shard.sh         (ROUNDS=3 REQUESTS=200000 PREQUESTS=2000000 MCDUR=5s)
#        PODKIT=bin/podkit bench/shard.sh
# Needs: redis-server, redis-tools (redis-benchmark), nutcracker, memcached
# (apt-get install redis-server redis-tools nutcracker memcached), Go (to
# build mcbench) and the podkit binary (make build). Installs nothing.
#
# Output: one line per run (with the proxy's CPU time per operation for
# nutcracker and podkit), then machine-readable ratio lines, including
# `ratio cpu-per-op podkit/nutcracker ...` (lower is cheaper); the last
# line is the unpipelined Redis ratio against nutcracker.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
PREQUESTS=${PREQUESTS:-2000000}
MCDUR=${MCDUR:-5s}
CLIENTS=${CLIENTS:-50}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PODKIT=${PODKIT:-$root/bin/podkit}

die() { echo "bench/shard.sh: $*" >&2; exit 1; }
find_bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }
REDIS=$(find_bin redis-server); [ -n "$REDIS" ] || die "redis-server not installed (apt-get install redis-server)"
RB=$(find_bin redis-benchmark); [ -n "$RB" ] || die "redis-benchmark not installed (apt-get install redis-tools)"
NUT=$(find_bin nutcracker); [ -n "$NUT" ] || die "nutcracker not installed (apt-get install nutcracker)"
MEMCACHED=$(find_bin memcached); [ -n "$MEMCACHED" ] || die "memcached not installed (apt-get install memcached)"
command -v go >/dev/null 2>&1 || die "go not installed (needed to build bench/cmd/mcbench)"
[ -x "$PODKIT" ] || die "podkit binary $PODKIT missing (run make build, or set PODKIT=)"
"$PODKIT" help 2>&1 | grep -qw 'shard' || die "$PODKIT has no shard command"

work=$(mktemp -d /tmp/podkit-bench-shard.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  die "nothing listening on port $1 ($2)"
}

(cd "$here" && go build -o "$work/mcbench" ./cmd/mcbench) || die "cannot build bench/cmd/mcbench"

R1=$(port); R2=$(port); M1=$(port); M2=$(port)
for p in $R1 $R2; do
  "$REDIS" --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile "$work/redis-$p.log" &
  pids+=($!)
done
user=(); [ "$(id -u)" = 0 ] && user=(-u root)
for p in $M1 $M2; do
  "$MEMCACHED" -l 127.0.0.1 -p "$p" -U 0 -m 256 -t 1 "${user[@]}" &
  pids+=($!)
done
for p in $R1 $R2 $M1 $M2; do wait_port "$p" server; done

NR=$(port); PR=$(port); NM=$(port); PM=$(port); NS=$(port); PA=$(port)
conf() { # listen-redis listen-memcache
  cat <<EOC
redis:
  listen: 127.0.0.1:$1
  redis: true
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  servers:
   - 127.0.0.1:$R1:1
   - 127.0.0.1:$R2:1
memcache:
  listen: 127.0.0.1:$2
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  servers:
   - 127.0.0.1:$M1:1
   - 127.0.0.1:$M2:1
EOC
}
conf "$NR" "$NM" >"$work/nutcracker.yml"
conf "$PR" "$PM" >"$work/podkit.yml"
"$NUT" -c "$work/nutcracker.yml" -s "$NS" -a 127.0.0.1 -p "$work/nut.pid" -o "$work/nut.log" &
nut_pid=$!
pids+=($nut_pid)
"$PODKIT" shard --config "$work/podkit.yml" --admin-addr "127.0.0.1:$PA" --log-format text >"$work/podkit.log" 2>&1 &
podkit_pid=$!
pids+=($podkit_pid)
for p in $NR $NM $PR $PM; do wait_port "$p" proxy; done

# rb PORT [extra args]: SET and GET rps, averaged.
rb() {
  local p=$1; shift
  "$RB" -h 127.0.0.1 -p "$p" -t set,get -c "$CLIENTS" -r 100000 --csv "$@" 2>/dev/null |
    awk -F'"' '$2=="SET"||$2=="GET" {s+=$4; n++} END {if (n==2) printf "%.0f\n", s/n; else print 0}'
}
mc() {
  local p=$1; shift
  "$work/mcbench" -addr "127.0.0.1:$p" -c "$CLIENTS" -d "$MCDUR" "$@" | sed -n 's/^ops=\([0-9.]*\).*/\1/p'
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio_line() { # name file-podkit file-peer
  paste "$2" "$3" | awk '$2>0 {print $1/$2}' >"$work/r"
  local med spread
  med=$(median <"$work/r")
  spread=$(sort -g "$work/r" | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f", hi-lo}')
  printf "ratio %s rps=%.2f (%d rounds, spread %s)\n" "$1" "$med" "$(wc -l <"$work/r")" "$spread"
}

cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # label target-cmd...
  local label=$1; shift
  local v pid="" c0 c1 t0 t1 cpu=""
  case $label in *-nutcracker) pid=$nut_pid ;; *-podkit) pid=$podkit_pid ;; esac
  [ -n "$pid" ] && c0=$(cputicks "$pid") && t0=$(date +%s.%N)
  if ! v=$("$@") || [ -z "$v" ]; then
    echo "bench/shard.sh: $label failed; counted as 0" >&2
    v=0
  fi
  if [ -n "$pid" ]; then
    # the proxy's CPU time per operation, in µs: what it costs the
    # machine, less sensitive than ops/s to what else runs on it
    c1=$(cputicks "$pid") t1=$(date +%s.%N)
    cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" -v r="$v" \
      'BEGIN { if (r > 0 && t > 0) printf "%.2f", c / hz / t / r * 1e6; else print 0 }')
    echo "$cpu" >>"$work/$label.cpu"
    cpu=" cpu ${cpu}µs/op"
  fi
  echo "$label $v ops/s$cpu"
  echo "$v" >>"$work/$label"
}
alive() {
  kill -0 "$podkit_pid" 2>/dev/null || { tail -20 "$work/podkit.log" >&2; die "podkit shard exited"; }
  kill -0 "$nut_pid" 2>/dev/null || { tail -20 "$work/nut.log" >&2; die "nutcracker exited"; }
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  for t in direct nutcracker podkit; do
    alive
    case $t in direct) rp=$R1 mp=$M1 ;; nutcracker) rp=$NR mp=$NM ;; podkit) rp=$PR mp=$PM ;; esac
    run "redis-P1-$t" rb "$rp" -n "$REQUESTS"
    run "redis-P16-$t" rb "$rp" -n "$PREQUESTS" -P 16
    run "memcache-P1-$t" mc "$mp"
    run "memcache-P16-$t" mc "$mp" -P 16
  done
done

echo
for w in memcache-P16 memcache-P1 redis-P16; do
  ratio_line "podkit/direct $w" "$work/$w-podkit" "$work/$w-direct"
  ratio_line "podkit/nutcracker $w" "$work/$w-podkit" "$work/$w-nutcracker"
done
cpu_line=""
for w in memcache-P16 memcache-P1 redis-P16 redis-P1; do
  paste "$work/$w-podkit.cpu" "$work/$w-nutcracker.cpu" | awk '$2>0 {print $1/$2}' >"$work/r"
  cpu_line="$cpu_line $w=$(median <"$work/r" | awk '{printf "%.2f", $1}')"
done
echo "ratio cpu-per-op podkit/nutcracker$cpu_line ($ROUNDS rounds; lower is cheaper)"
ratio_line "podkit/direct redis-P1" "$work/redis-P1-podkit" "$work/redis-P1-direct"
ratio_line "podkit/nutcracker redis-P1" "$work/redis-P1-podkit" "$work/redis-P1-nutcracker"
