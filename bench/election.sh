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
# Usage: bench/election.sh          (TRIALS=20 SLOW_TRIALS=$TRIALS BACKENDS=raft,etcd,kubernetes,kubernetes-15-10-2)
#        PODKIT=bin/podkit bench/election.sh
# Needs: Go (builds bench/election), the podkit binary (make build), and for
# the kubernetes rows the kube-apiserver binary that podkit's tests build
# and cache (go test ./internal/kubetest builds it once; or set
# KUBE_APISERVER=). Installs nothing.
#
# Output: a line per backend and mode (n, p50, p90, p99, min, max); the last
# line is machine-readable, with the targets and the ratio to the peers.
set -euo pipefail

TRIALS=${TRIALS:-20}
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
case ",$BACKENDS," in
*,kubernetes*) [ -x "$KUBE_APISERVER" ] || die "kube-apiserver $KUBE_APISERVER missing (go test ./internal/kubetest builds it; or set KUBE_APISERVER=)" ;;
esac

work=$(mktemp -d /tmp/podkit-bench-election.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$here/election" && go build -o "$work/election-bench" .) || die "building bench/election failed"
echo "podkit elect failover: $TRIALS crash + $TRIALS graceful trials per backend ($BACKENDS), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
"$work/election-bench" -podkit "$PODKIT" -trials "$TRIALS" -slow-trials "$SLOW_TRIALS" \
  -backends "$BACKENDS" -kube-apiserver "$KUBE_APISERVER"
