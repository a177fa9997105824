#!/usr/bin/env bash
# install-deps.sh installs, from Debian's packages, the servers and tools that
# podkit's test tiers need: the real peers (redis, memcached, nginx,
# nutcracker, MariaDB, PostgreSQL), debootstrap for the peer image,
# docker-compose (1.29, Debian's) for the deploy/compose examples' tests, and
# the load generator used by bench/.
#
# Run as root. Safe to run again: apt-get skips what is installed. The
# packaged services are left stopped and disabled, because tests start their
# own server processes on random loopback ports and the well-known ports
# (6379, 11211, 80, 3306, 5432) must stay free.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

packages=(
  ca-certificates
  curl
  git
  make
  debootstrap
  docker-compose
  redis-server
  redis-tools
  memcached
  nginx
  nutcracker
  mariadb-server
  mariadb-client
  postgresql
  wrk
  nghttp2-client
  prometheus
  dnsmasq-base  # a real DNS server (A, AAAA, SRV) for discovery's dns: and srv: sources
  haproxy  # the peer of bench/broker.sh, and a second balancer in broker tests
  python3-prometheus-client  # the strict OpenMetrics reference parser for container's /metrics test
)

# Services the packages above would start on install.
services=(redis-server memcached nginx nutcracker mariadb postgresql prometheus haproxy)

# Keep maintainer scripts from starting services while installing: a
# policy-rc.d that answers 101 ("action forbidden") is the Debian mechanism.
# One that already exists is left as it is.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup() {
  if [ "$own_policy" -eq 1 ]; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
else
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Stop and disable the packaged services, whichever init system is in charge.
systemd=0
if [ -d /run/systemd/system ]; then
  systemd=1
fi
for s in "${services[@]}"; do
  if [ "$systemd" -eq 1 ]; then
    systemctl disable --now "$s" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$s" ]; then
    "/etc/init.d/$s" stop >/dev/null 2>&1 || true
    update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done

# Report anything still holding a well-known port: a test that binds its own
# port will still work, but a leftover service is worth knowing about.
if command -v ss >/dev/null 2>&1; then
  busy=$(ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E ':(6379|11211|80|3306|5432)$' || true)
  if [ -n "$busy" ]; then
    echo "install-deps: warning: still listening: $busy" >&2
  fi
fi

echo "install-deps: done"
