package cli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
)

// verbCommand is a command with one verb, "say", which records what it
// ran with.
func verbCommand(ran *[]string) Command {
	return Command{
		Name:    "thing",
		Summary: "does a thing",
		Setup: func(fs *flag.FlagSet) Runner {
			fs.Int("count", 3, "count")
			return func(ctx context.Context, args []string, stdio IO) error {
				*ran = append([]string{"thing"}, args...)
				return nil
			}
		},
		Verbs: []Verb{{
			Name:     "say",
			Synopsis: "[--loud] [--to NAME] WORDS...",
			Summary:  "say the words",
			Setup: func(fs *flag.FlagSet) Runner {
				loud := fs.Bool("loud", false, "shout")
				to := fs.String("to", "you", "whom to tell, a `NAME`")
				return func(ctx context.Context, args []string, stdio IO) error {
					*ran = append([]string{"say", "loud=" + map[bool]string{true: "yes", false: "no"}[*loud], "to=" + *to}, args...)
					return nil
				}
			},
		}},
	}
}

// TestVerbs: a verb named by the first argument runs with its own flags,
// wherever they are among its arguments, from the environment too; its
// --help has the form of every command's; other arguments run the command.
func TestVerbs(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		ran    []string
		stdout string
		stderr string
	}{
		{name: "verb", args: []string{"thing", "say", "a", "--loud", "b", "--to", "x", "--", "--c"}, ran: []string{"say", "loud=yes", "to=x", "a", "b", "--c"}},
		{name: "verb after the command's flags", args: []string{"thing", "--count", "4", "say", "a"}, ran: []string{"say", "loud=no", "to=you", "a"}},
		{name: "verb flag from env", env: map[string]string{"PODKIT_TO": "env"}, args: []string{"thing", "say"}, ran: []string{"say", "loud=no", "to=env"}},
		{name: "not a verb", args: []string{"thing", "shout", "--to"}, ran: []string{"thing", "shout", "--to"}},
		{name: "verb help", args: []string{"thing", "say", "-h"},
			stdout: "Usage: podkit thing say [--loud] [--to NAME] WORDS...\n\nsay the words. Flags may come before or after the arguments; -- ends them.\n\nFlags:\n" +
				"  --loud\n      shout (env PODKIT_LOUD, default false)\n  --to NAME\n      whom to tell, a NAME (env PODKIT_TO, default you)\n"},
		{name: "verb usage error", args: []string{"thing", "say", "--nope"}, code: 2, stderr: "podkit thing: unknown flag --nope\n"},
		{name: "verb's variable is no typo", env: map[string]string{"PODKIT_LOUD": "true"}, args: []string{"thing"}, ran: []string{"thing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var ran []string
			var out, errb bytes.Buffer
			code := Main(context.Background(), []Command{verbCommand(&ran)}, tt.args, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
			if code != tt.code || !reflect.DeepEqual(ran, tt.ran) {
				t.Errorf("exit %d, ran %q; want %d, %q (stderr %q)", code, ran, tt.code, tt.ran, errb.String())
			}
			if tt.stdout != "" && out.String() != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), tt.stdout)
			}
			var warnings []string
			for _, l := range strings.SplitAfter(errb.String(), "\n") {
				if strings.Contains(l, "PODKIT_TO") || strings.Contains(l, "PODKIT_LOUD") {
					warnings = append(warnings, l)
				}
			}
			if len(warnings) > 0 {
				t.Errorf("warned about a verb's variable: %q", warnings)
			}
			if tt.stderr != "" && errb.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", errb.String(), tt.stderr)
			}
		})
	}
}

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
		{args: []string{"a", "--json=maybe"}, err: `"maybe" for -json`},
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
