package shard

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/testdeps"
)

// refusedRow is one row of docs/shard.md's "Refused commands" table.
type refusedRow struct {
	protocol string
	commands []string
	why      string
}

// docRefused reads the table of refused commands from docs/shard.md.
func docRefused(t *testing.T) []refusedRow {
	t.Helper()
	b, err := os.ReadFile("../../docs/shard.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Refused commands\n")
	if !ok {
		t.Fatal(`docs/shard.md has no "## Refused commands" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	names := regexp.MustCompile("`([^`]+)`")
	var rows []refusedRow
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || (cells[1] != " redis " && cells[1] != " memcache ") {
			continue
		}
		row := refusedRow{protocol: strings.TrimSpace(cells[1]), why: strings.TrimSpace(cells[3])}
		for _, m := range names.FindAllStringSubmatch(cells[2], -1) {
			row.commands = append(row.commands, m[1])
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		t.Fatal("docs/shard.md: no rows in the table of refused commands")
	}
	return rows
}

// TestRefusedCommandsAsDocumented sends every command docs/shard.md lists
// as refused, and expects the reason of its row; and every command the
// proxy refuses is in the list.
func TestRefusedCommandsAsDocumented(t *testing.T) {
	t.Parallel()
	rows := docRefused(t)
	ra := testdeps.StartRedis(t)
	ma := testdeps.StartMemcached(t)
	if ra == "" || ma == "" {
		return
	}
	rp := start(t, redisConfig(ra))
	mp := start(t, mcConfig(ma))
	rc := dialRedis(t, rp.addr(""))
	mc := dialMC(t, mp.addr(""))
	documented := map[string]bool{}
	for _, row := range rows {
		for _, name := range row.commands {
			switch row.protocol {
			case "redis":
				documented[name] = true
				want := "-ERR podkit shard: " + name + " is not supported: " + row.why + "\r\n"
				if got := rc.do(name, "k1", "k2", "v"); got != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
			case "memcache":
				mc.send(name + "\r\n")
				mc.expect("CLIENT_ERROR podkit shard: '" + name + "' is not supported: " + row.why + "\r\n")
			}
		}
	}
	if got := rc.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after the refused commands: %q", got)
	}
	mc.send("version\r\n")
	mc.expect("VERSION podkit-shard\r\n")
	for _, p := range []*running{rp, mp} {
		if n := p.px.pools()[0].servers[0].requests.Load(); n != 0 {
			t.Errorf("%d requests reached the server; a refused command sends nothing", n)
		}
	}
	var missing []string
	for name, ci := range commands {
		if ci.class == cmdUnshardable && !documented[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("refused but not in docs/shard.md's table: %v", missing)
	}
}
