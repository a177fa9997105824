package workqueue

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args  []string
		pos   []string
		queue string
		json  bool
		err   string
	}{
		{args: nil, queue: "default"},
		{args: []string{"a", "--queue", "q", "b"}, pos: []string{"a", "b"}, queue: "q"},
		{args: []string{"a", "--json", "b"}, pos: []string{"a", "b"}, queue: "default", json: true},
		{args: []string{"--json=false", "a", "-queue=q"}, pos: []string{"a"}, queue: "q"},
		{args: []string{"-", "--queue", "-"}, pos: []string{"-"}, queue: "-"},
		{args: []string{"a", "--", "--json", "--queue", "q"}, pos: []string{"a", "--json", "--queue", "q"}, queue: "default"},
		{args: []string{"a", "--queue"}, err: "--queue needs a value"},
		{args: []string{"a", "--nope", "b"}, err: "unknown flag --nope"},
		{args: []string{"a", "--json=maybe"}, err: `"maybe" for -json`}, // the wording is internal/cli's
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			queue := fs.String("queue", "default", "")
			asJSON := fs.Bool("json", false, "")
			pos, err := parseInterspersed(fs, tt.args)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(pos, tt.pos) || *queue != tt.queue || *asJSON != tt.json {
				t.Fatalf("pos %q queue %q json %v err %v; want %q %q %v", pos, *queue, *asJSON, err, tt.pos, tt.queue, tt.json)
			}
		})
	}
}
