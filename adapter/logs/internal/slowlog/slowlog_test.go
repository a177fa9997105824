package slowlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

func entries(ids ...int64) []Entry {
	var out []Entry
	for _, id := range ids {
		out = append(out, Entry{ID: id})
	}
	return out
}

func ids(es []Entry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestTracker(t *testing.T) {
	type poll struct {
		runID   string
		ids     []int64
		maxLen  int
		wantNew []int64
		restart bool
		lost    int64
		over    bool
	}
	tests := []struct {
		name  string
		polls []poll
	}{
		{"first poll prints everything, then only new", []poll{
			{"a", []int64{2, 1, 0}, 128, []int64{0, 1, 2}, false, 0, false},
			{"a", []int64{3, 2, 1, 0}, 128, []int64{3}, false, 0, false},
			{"a", []int64{3, 2, 1, 0}, 128, nil, false, 0, false},
		}},
		{"empty first poll, then id 0 is new", []poll{
			{"a", nil, 128, nil, false, 0, false},
			{"a", []int64{0}, 128, []int64{0}, false, 0, false},
		}},
		{"overflow", []poll{
			{"a", []int64{0, 1}, 4, []int64{0, 1}, false, 0, false},
			{"a", []int64{6, 7, 8, 9}, 4, []int64{6, 7, 8, 9}, false, 4, true},
		}},
		{"reset between polls", []poll{
			{"a", []int64{0, 1}, 128, []int64{0, 1}, false, 0, false},
			{"a", []int64{5}, 128, []int64{5}, false, 3, false},
		}},
		{"restart by run_id", []poll{
			{"a", []int64{0, 1, 2, 3, 4}, 128, []int64{0, 1, 2, 3, 4}, false, 0, false},
			{"b", []int64{0, 1, 2, 3, 4, 5, 6}, 128, []int64{0, 1, 2, 3, 4, 5, 6}, true, 0, false},
		}},
		{"restart by ids going back (no run_id)", []poll{
			{"", []int64{7, 8}, 128, []int64{7, 8}, false, 0, false},
			{"", []int64{0}, 128, []int64{0}, true, 0, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			for i, p := range tt.polls {
				res := tr.Observe(p.runID, entries(p.ids...), p.maxLen)
				if got := ids(res.New); fmt.Sprint(got) != fmt.Sprint(p.wantNew) {
					t.Errorf("poll %d: new %v, want %v", i, got, p.wantNew)
				}
				if res.Restart != p.restart || res.Lost != p.lost || res.Overflow != p.over {
					t.Errorf("poll %d: restart=%v lost=%d overflow=%v, want %v %d %v", i, res.Restart, res.Lost, res.Overflow, p.restart, p.lost, p.over)
				}
				tr.Commit(p.runID, res)
			}
		})
	}
}

func TestParseEntries(t *testing.T) {
	in := "*2\r\n*6\r\n:14\r\n:1309448221\r\n:15\r\n*2\r\n$4\r\nping\r\n+x\r\n$15\r\n127.0.0.1:58217\r\n$0\r\n\r\n*4\r\n:1\r\n:2\r\n:3\r\n*0\r\n"
	v, err := resp.ParseValue([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	es, err := ParseEntries(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != 14 || es[0].Duration != 15*time.Microsecond || strings.Join(es[0].Args, " ") != "ping x" ||
		es[0].Client != "127.0.0.1:58217" || es[0].Time.Unix() != 1309448221 || es[1].ID != 1 {
		t.Fatalf("entries %+v", es)
	}
}

func TestParseEntriesRejects(t *testing.T) {
	for _, v := range []resp.Value{
		{Kind: resp.KindSimple},
		{Kind: resp.KindArray, Nil: true},
		{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindInteger}}},
		{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindBulk}, {Kind: resp.KindInteger}, {Kind: resp.KindInteger}, {Kind: resp.KindArray}}}}},
		{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindInteger, Int: -1}, {Kind: resp.KindInteger}, {Kind: resp.KindInteger}, {Kind: resp.KindArray}}}}},
		{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindInteger}, {Kind: resp.KindInteger}, {Kind: resp.KindInteger}, {Kind: resp.KindArray, Array: []resp.Value{{Kind: resp.KindBulk, Nil: true}}}}}}},
	} {
		if _, err := ParseEntries(v); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseEntries(%+v) = %v, want ErrProtocol", v, err)
		}
	}
}

// TestRealRedis reads a real server's slowlog.
func TestRealRedis(t *testing.T) {
	addr := testdeps.StartRedis(t, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "16")
	if addr == "" {
		return
	}
	ctx := context.Background()
	c, err := resp.Dial(ctx, "tcp", addr, resp.DialOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(ctx, "SET", "k", "v with spaces"); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(ctx, "SLOWLOG", "GET", "-1")
	if err != nil {
		t.Fatal(err)
	}
	es, err := ParseEntries(v)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		if strings.Join(e.Args, "|") == "SET|k|v with spaces" {
			found = true
		}
	}
	if !found {
		t.Fatalf("SET not in the slowlog: %+v", es)
	}
	info, err := c.Do(ctx, "INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	if id := ParseInfoField(info.Str, "run_id"); len(id) != 40 {
		t.Fatalf("run_id %q", id)
	}
	if _, err := c.Do(ctx, "NOSUCHCOMMAND"); err == nil {
		t.Fatal("error reply not returned as an error")
	}
}

// FuzzParseEntries: any reply decodes to entries or an error, never a
// panic, and a first poll of what decodes takes every entry as new.
func FuzzParseEntries(f *testing.F) {
	f.Add("*1\r\n*6\r\n:14\r\n:1309448221\r\n:15\r\n*1\r\n$4\r\nping\r\n$3\r\na:b\r\n$0\r\n\r\n")
	f.Add("-ERR x\r\n")
	f.Add("*-1\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := resp.NewReader(strings.NewReader(s), 0, resp.DefaultLimits).ReadValue()
		if err != nil {
			return
		}
		es, err := ParseEntries(v)
		if err != nil {
			return
		}
		var tr Tracker
		res := tr.Observe("x", es, 4)
		tr.Commit("x", res)
		if len(res.New) != len(es) {
			t.Fatalf("first poll: %d new of %d", len(res.New), len(es))
		}
	})
}
