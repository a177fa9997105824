#!/usr/bin/env bash
# bench/logs.sh — podkit logs throughput: tail a generated corpus of JSON
# and log4j lines with Java stack traces to a file, in three pipeline
# shapes, and report lines/s, MB/s and peak RSS.
#
#   java         --multiline java --parse none      (Fluent Bit: multiline.parser java)
#   java+parse   --multiline java --parse json,log4j (Fluent Bit: + JSON and regex parser filter)
#   passthrough  --parse none                        (plain pass-through, every line an event)
#
# The peer, Fluent Bit 5.1.1, is not packaged in Debian; its figures were
# measured on this machine on the same corpus shape (1,000,000 lines,
# ~105 MB, tail -> file): 156k lines/s with java multiline, 104k lines/s
# adding JSON + regex parsing, ~30 MB peak RSS. They are the reference for
# the final ratio line. Absolute numbers drift on shared machines; the
# pipelines alternate within each round.
#
# Usage: bench/logs.sh            (1,000,000 lines, 3 rounds)
#        LINES=10000000 bench/logs.sh   (~1 GB corpus)
#        PODKIT=/path/to/podkit ROUNDS=5 bench/logs.sh
set -euo pipefail

ROUNDS=${ROUNDS:-3}
LINES=${LINES:-1000000}
FB_JAVA=156000     # Fluent Bit 5.1.1 lines/s, multiline java, tail -> file
FB_PARSE=104000    # + JSON and log4j regex parsing
FB_RSS_KB=30720    # ~30 MB peak RSS

cd "$(dirname "$0")/.."
die() { echo "bench/logs.sh: $*" >&2; exit 1; }

[ -x /usr/bin/time ] || die "needs GNU time for peak RSS (apt-get install time)"
command -v go >/dev/null || die "needs the go toolchain to build podkit and the corpus"

WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/podkit-bench-logs.XXXXXX")}
mkdir -p "$WORK"
trap 'rm -f "$WORK"/out.json' EXIT

if [ -z "${PODKIT:-}" ]; then
	PODKIT=$WORK/podkit
	CGO_ENABLED=0 go build -o "$PODKIT" ./cmd/podkit || die "cannot build ./cmd/podkit"
fi
"$PODKIT" help logs >/dev/null 2>&1 || die "$PODKIT has no 'logs' command (register adapter/logs in cmd/podkit)"

CORPUS=$WORK/corpus-$LINES.log
if [ ! -s "$CORPUS" ]; then
	go run bench/logs/gen.go -lines "$LINES" -o "$CORPUS" || die "cannot generate the corpus"
fi
BYTES=$(stat -c %s "$CORPUS")
echo "corpus: $LINES lines, $BYTES bytes ($CORPUS)"

declare -A ARGS=(
	[java]="--multiline java --parse none"
	[java+parse]="--multiline java --parse json,log4j"
	[passthrough]="--parse none"
)
ORDER=(java java+parse passthrough)
declare -A SECS RSS CPU

for round in $(seq 1 "$ROUNDS"); do
	for name in "${ORDER[@]}"; do
		# shellcheck disable=SC2086
		/usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$PODKIT" logs --files "$CORPUS" --exit-on-eof \
			--admin-addr off --log-level warn ${ARGS[$name]} >"$WORK/out.json" || die "$name: podkit logs failed"
		read -r s kb us ss <"$WORK/time"
		SECS[$name]+="$s "
		RSS[$name]+="$kb "
		CPU[$name]+="$(echo "$us + $ss" | bc -l) "
		printf 'round %d %-12s %6.2f s (cpu %5.2f s)  %7.0f lines/s  %6.1f MB/s  peak RSS %5.1f MB  (%d events out)\n' \
			"$round" "$name" "$s" "$(echo "$us + $ss" | bc -l)" "$(echo "$LINES / $s" | bc -l)" "$(echo "$BYTES / $s / 1000000" | bc -l)" \
			"$(echo "$kb / 1024" | bc -l)" "$(wc -l <"$WORK/out.json")"
	done
done

# median and relative spread of a list of numbers
stats() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s %s\n", m, (a[NR]-a[1])/m}'; }
maxrss() { tr ' ' '\n' | grep . | sort -g | tail -1; }

spread_max=0
echo
for name in "${ORDER[@]}"; do
	read -r med spread < <(echo "${SECS[$name]}" | stats)
	rss=$(echo "${RSS[$name]}" | maxrss)
	read -r cpu _ < <(echo "${CPU[$name]}" | stats)
	lps=$(echo "$LINES / $med" | bc -l)
	printf '%-12s median %7.0f lines/s  %6.1f MB/s  peak RSS %5.1f MB  cpu %.2f s (%7.0f lines per cpu-second)  (spread %.2f)\n' \
		"$name" "$lps" "$(echo "$BYTES / $med / 1000000" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$cpu" "$(echo "$LINES / $cpu" | bc -l)" "$spread"
	declare "LPS_${name//[^a-z]/_}=$lps"
	declare "RSSKB_${name//[^a-z]/_}=$rss"
	spread_max=$(echo "if ($spread > $spread_max) $spread else $spread_max" | bc -l)
done

rss_peak=$(echo "${RSS[*]}" | maxrss)
printf 'ratio podkit/fluent-bit(recorded) java=%.2f java+parse=%.2f rss=%.2f (%d rounds, spread %.2f)\n' \
	"$(echo "$LPS_java / $FB_JAVA" | bc -l)" "$(echo "$LPS_java_parse / $FB_PARSE" | bc -l)" \
	"$(echo "$rss_peak / $FB_RSS_KB" | bc -l)" "$ROUNDS" "$spread_max"
