#!/usr/bin/env bash
# peer-image.sh builds the local Docker image that podkit's container tier and
# examples use for third-party servers: nginx, redis, memcached, nutcracker,
# MariaDB and PostgreSQL, plus busybox for sh/sleep/kill in example pods.
#
# The image is built from Debian's own packages, with debootstrap against the
# mirror and suite apt on this machine already uses, then `docker import`ed:
# no image is pulled from a registry.
#
# Usage: scripts/peer-image.sh [TAG]
#   TAG defaults to $PODKIT_PEER_IMAGE, then podkit-peers:bookworm.
#   PODKIT_PEER_MIRROR / PODKIT_PEER_SUITE override the detected mirror/suite.
#   PODKIT_PEER_REBUILD=1 rebuilds even when a matching image exists.
#
# The image carries the label podkit.peers.hash, a hash of everything that
# decides its contents (package list, mirror, suite, this script's recipe); a
# rerun on the same machine finds a matching image and does nothing.
#
# Needs root, docker and debootstrap.
set -euo pipefail

start=$(date +%s)
tag=${1:-${PODKIT_PEER_IMAGE:-podkit-peers:bookworm}}

# Keep this list sorted; changing it changes the hash and forces a rebuild.
packages=(
  busybox
  ca-certificates
  mariadb-client
  mariadb-server
  memcached
  nginx
  nutcracker
  postgresql
  redis-server
  redis-tools
)

# Bump when the recipe below changes in a way the package list does not show.
recipe=2

log() { printf 'peer-image: [%3ss] %s\n' "$(($(date +%s) - start))" "$*"; }
die() { printf 'peer-image: %s\n' "$*" >&2; exit 1; }

# detect_source prints "MIRROR SUITE" for the first enabled Debian "deb"
# source apt uses whose suite is a release (no -updates, -security, ...).
detect_source() {
  {
    # deb822 files: paragraphs of "Field: value" lines.
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
            split(uris, u, " "); split(suites, s, " ")
            for (i in s) print u[1], s[i]
          }
          types = ""; uris = ""; suites = ""; enabled = ""; last = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (last == "uris") uris = uris " " $1; next }
        {
          key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
          last = key
          if (key == "types") types = $0
          else if (key == "uris") uris = $0
          else if (key == "suites") suites = $0
          else if (key == "enabled") enabled = tolower($0)
        }
        END { flush() }
      ' "$f"
    done
    # One-line format: deb [options] URI SUITE COMPONENTS...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk '
        $1 != "deb" { next }
        {
          i = 2
          if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          print $i, $(i + 1)
        }
      ' "$f"
    done
  } | awk '$2 !~ /-/ && $1 ~ /debian/ && $1 !~ /security/ { print; exit }'
}

read -r detected_mirror detected_suite < <(detect_source || true) || true
mirror=${PODKIT_PEER_MIRROR:-${detected_mirror:-}}
suite=${PODKIT_PEER_SUITE:-${detected_suite:-}}
[ -n "$mirror" ] && [ -n "$suite" ] ||
  die "cannot find a Debian mirror and suite in /etc/apt/sources.list{,.d/}; set PODKIT_PEER_MIRROR and PODKIT_PEER_SUITE"

command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "docker engine not reachable (docker info failed)"

hash=$(printf '%s\n' "recipe=$recipe" "mirror=$mirror" "suite=$suite" "arch=$(dpkg --print-architecture)" "${packages[@]}" |
  sha256sum | cut -c1-16)

have=$(docker image inspect -f '{{index .Config.Labels "podkit.peers.hash"}}' "$tag" 2>/dev/null || true)
if [ "$have" = "$hash" ] && [ "${PODKIT_PEER_REBUILD:-0}" != 1 ]; then
  log "$tag is up to date (hash $hash); nothing to do"
  exit 0
fi

old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

log "building $tag from $mirror $suite (hash $hash)"

rootfs=$(mktemp -d /var/tmp/podkit-peers.XXXXXX)
cleanup() {
  # debootstrap mounts /proc and /sys in the target; a failed run can leave
  # them behind, and rm -rf must never descend into them.
  local m
  if command -v findmnt >/dev/null; then
    for m in $(findmnt -rn -o TARGET | grep -F "$rootfs/" | sort -r || true); do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  rm -rf --one-file-system "$rootfs" "$rootfs.log" || echo "peer-image: could not remove $rootfs" >&2
}
trap cleanup EXIT

include=$(IFS=,; echo "${packages[*]}")
log "debootstrap: downloading and installing ${#packages[@]} packages and their dependencies (a few minutes)"
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 &
deboot=$!
# Say which step debootstrap is in (its "I: Retrieving/Validating/
# Extracting/Unpacking/Configuring ..." lines) when the step changes, and
# at least every 30 s, so that a long build is not taken for a hang.
phase="" said=$(date +%s)
while kill -0 "$deboot" 2>/dev/null; do
  sleep 2
  line=$(grep -E '^I: ' "$rootfs.log" 2>/dev/null | tail -n 1 || true)
  line=${line#I: }
  now=$(date +%s)
  if [ -n "$line" ] && { [ "${line%% *}" != "$phase" ] || [ $((now - said)) -ge 30 ]; }; then
    log "debootstrap: $line"
    phase=${line%% *} said=$now
  fi
done
wait "$deboot" || {
  tail -n 40 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  die "debootstrap failed"
}
rm -f "$rootfs.log"
log "debootstrap done"

# Trim what a container never needs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/*

# PostgreSQL's binaries live in a versioned directory; put it on PATH.
pgbin=$(find "$rootfs/usr/lib/postgresql" -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort | tail -n 1)
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -n "$pgbin" ]; then
  path="${pgbin#"$rootfs"}:$path"
fi

log "docker import: $(du -sh --one-file-system "$rootfs" | cut -f1) root file system"
tar --numeric-owner -C "$rootfs" -cf - . |
  docker import \
    --change "ENV PATH=$path" \
    --change 'CMD ["/bin/sh"]' \
    --change "LABEL podkit.peers.hash=$hash" \
    --change "LABEL org.opencontainers.image.title=podkit-peers" \
    --change "LABEL org.opencontainers.image.description=\"Debian $suite servers for podkit example pods and tests\"" \
    --change "LABEL org.opencontainers.image.base.name=debian:$suite" \
    - "$tag" >/dev/null

size=$(docker image inspect -f '{{.Size}}' "$tag")
log "imported $tag ($((size / 1024 / 1024)) MiB)"

# The image this one replaces is now untagged; drop it unless in use.
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 && log "removed the previous image ${old_id#sha256:}" || true
fi
