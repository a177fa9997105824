#!/usr/bin/env bash
# bench/election.sh — podkit elect failover time, per backend.
#
# Three `podkit elect` replicas per backend; the leader is killed (kill -9,
# "crash") or stopped with SIGTERM ("graceful": it releases leadership or
# hands it over), alternating, TRIALS times each; the failover time is from
# the signal to the first survivor's /watch event naming a new leader with
# a higher epoch. Backends: raft (tuned 200/200/100 ms), etcd (embedded,
# 2 s TTL), kubernetes (a real kube-apiserver on embedded etcd) at podkit's
# defaults (4s/3s/500ms) and at client-go's usual 15s/10s/2s.
#
# The peers measured on this machine (issue 6; medians of 5): client-go
# 15/10/2 s kill -9 17.5 s, ReleaseOnCancel 1.25 s; etcd concurrency.Election
# kill -9 2.19 s, Resign 3 ms; hashicorp/raft tuned kill -9 0.41 s,
# LeadershipTransfer 1.3 ms.
#
# Raft configurations are named raft (podkit's defaults) or raft-H-E-L
# (heartbeat, election and lease timeouts in ms: raft-200-200-100 is the
# old defaults).
#
# Soak (SOAK=10m): instead of failover trials, three raft replicas per
# configuration in BACKENDS run for SOAK each while `stress-ng --cpu
# $STRESS_CPUS` (default 8) saturates the CPU, and every leadership change
# the replicas' /watch streams report is counted (a new leader or epoch; a
# replica with no leader known; a leader that stops saying it leads), with
# the load average. Needs stress-ng (apt-get install stress-ng).
#
# Usage: bench/election.sh          (TRIALS=20 SLOW_TRIALS=$TRIALS BACKENDS=raft,etcd,kubernetes,kubernetes-15-10-2)
#        PODKIT=bin/podkit bench/election.sh
#        SOAK=10m BACKENDS=raft bench/election.sh
#        SOAK=3m BACKENDS=raft-200-200-100 bench/election.sh
# Needs: Go (builds bench/election), the podkit binary (make build), and for
# the kubernetes rows the kube-apiserver binary that podkit's tests build
# and cache (go test ./internal/kubetest builds it once; or set
# KUBE_APISERVER=). Installs nothing.
#
# STOP_TRIALS=N adds N trials per backend where the leader is SIGSTOPped
# (its kernel still accepts connections, it says nothing: like a host
# that is lost without resetting connections), timed the same way.
#
# Output: a line per backend and mode (n, p50, p90, p99, min, max); the last
# line is machine-readable, with the targets and the ratio to the peers.
set -euo pipefail

TRIALS=${TRIALS:-20}
STOP_TRIALS=${STOP_TRIALS:-0}
SOAK=${SOAK:-}
STRESS_CPUS=${STRESS_CPUS:-8}
SLOW_TRIALS=${SLOW_TRIALS:-$TRIALS}
BACKENDS=${BACKENDS:-raft,etcd,kubernetes,kubernetes-15-10-2}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PODKIT=${PODKIT:-$root/bin/podkit}
cache=${XDG_CACHE_HOME:-$HOME/.cache}
KUBE_APISERVER=${KUBE_APISERVER:-$cache/podkit/kube-apiserver-v1.36.3/kube-apiserver}

die() { echo "bench/election.sh: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || die "go not installed (needed to build bench/election)"
[ -x "$PODKIT" ] || die "podkit binary $PODKIT missing (run make build, or set PODKIT=)"
"$PODKIT" help 2>&1 | grep -qw 'elect' || die "$PODKIT has no elect command"
if [ -n "$SOAK" ]; then
  command -v stress-ng >/dev/null 2>&1 || die "stress-ng not installed (needed to saturate the CPU for SOAK; apt-get install stress-ng)"
  case ",$BACKENDS," in *,etcd,*|*,kubernetes*) die "SOAK runs raft configurations only (BACKENDS=$BACKENDS)" ;; esac
fi
case ",$BACKENDS," in
*,kubernetes*) [ -x "$KUBE_APISERVER" ] || die "kube-apiserver $KUBE_APISERVER missing (go test ./internal/kubetest builds it; or set KUBE_APISERVER=)" ;;
esac

work=$(mktemp -d /tmp/podkit-bench-election.XXXXXX)
stress=
cleanup() {
  if [ -n "$stress" ]; then kill "$stress" 2>/dev/null || true; wait "$stress" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$here/election" && go build -o "$work/election-bench" .) || die "building bench/election failed"
if [ -n "$SOAK" ]; then
  secs=$("$work/election-bench" -soak "$SOAK" -backends "$BACKENDS" -print-soak-seconds) || die "SOAK=$SOAK: want a duration like 10m"
  secs=$(( secs + 120 ))
  # Bounded: stress-ng stops by itself after the soaks (plus start-up slack).
  stress-ng --cpu "$STRESS_CPUS" --timeout "${secs}s" --quiet &
  stress=$!
  sleep 5
  echo "podkit elect soak: $SOAK per configuration ($BACKENDS) under stress-ng --cpu $STRESS_CPUS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
  "$work/election-bench" -podkit "$PODKIT" -soak "$SOAK" -backends "$BACKENDS"
  exit
fi
echo "podkit elect failover: $TRIALS crash + $TRIALS graceful trials per backend ($BACKENDS), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
"$work/election-bench" -podkit "$PODKIT" -trials "$TRIALS" -slow-trials "$SLOW_TRIALS" -stop-trials "$STOP_TRIALS" \
  -backends "$BACKENDS" -kube-apiserver "$KUBE_APISERVER"
