package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func testCommand(got *[]string, d *time.Duration, n *int) Command {
	return Command{
		Name:    "thing",
		Summary: "does a thing",
		Setup: func(fs *flag.FlagSet) Runner {
			fs.DurationVar(d, "drain-delay", 5*time.Second, "delay")
			fs.IntVar(n, "count", 3, "count")
			fs.Var((*StringList)(got), "wait-for", "targets")
			return func(ctx context.Context, args []string, stdio IO) error {
				if len(args) > 0 && args[0] == "fail" {
					return errors.New("it failed\non two lines")
				}
				if len(args) > 0 && args[0] == "usage" {
					return Usagef("--count: bad")
				}
				if len(args) > 0 && args[0] == "code" {
					return exitErr(7)
				}
				return nil
			}
		},
	}
}

type exitErr int

func (e exitErr) Error() string { return "" }
func (e exitErr) ExitCode() int { return int(e) }

func TestMain_exitCodesAndMessages(t *testing.T) {
	var list []string
	var d time.Duration
	var n int
	cmds := []Command{testCommand(&list, &d, &n)}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStderr bool
	}{
		{name: "no args: usage on stderr, exit 2", args: nil, code: 2, stderr: "Usage: podkit <command>"},
		{name: "help", args: []string{"help"}, code: 0, stdout: "does a thing"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "Commands:"},
		{name: "help for a command", args: []string{"help", "thing"}, code: 0, stdout: "PODKIT_DRAIN_DELAY"},
		{name: "command --help", args: []string{"thing", "--help"}, code: 0, stdout: "--wait-for"},
		{name: "version", args: []string{"version"}, code: 0, stdout: "podkit "},
		{name: "unknown command", args: []string{"nope"}, code: 2, stderr: `unknown command "nope"`},
		{name: "help unknown command", args: []string{"help", "nope"}, code: 2, stderr: `unknown command "nope"`},
		{name: "unknown flag", args: []string{"thing", "--bogus"}, code: 2, stderr: "podkit thing: unknown flag --bogus\n"},
		{name: "bad duration", args: []string{"thing", "--drain-delay", "soon"}, code: 2, stderr: "--drain-delay: invalid value \"soon\": want a duration"},
		{name: "bad int", args: []string{"thing", "--count=x"}, code: 2, stderr: "--count: invalid value \"x\": want an integer"},
		{name: "missing value", args: []string{"thing", "--count"}, code: 2, stderr: "flag --count needs a value"},
		{name: "runner error is one line, exit 1", args: []string{"thing", "fail"}, code: 1, stderr: "podkit thing: it failed; on two lines\n"},
		{name: "usage error exit 2", args: []string{"thing", "usage"}, code: 2, stderr: "--count: bad"},
		{name: "exit coder", args: []string{"thing", "code"}, code: 7, noStderr: true},
		{name: "ok", args: []string{"thing"}, code: 0, noStderr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), cmds, tt.args, IO{Stdout: &out, Stderr: &errb})
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.stdout)
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderr)
			}
			if tt.noStderr && errb.Len() > 0 {
				t.Errorf("unexpected stderr %q", errb.String())
			}
			if tt.args != nil && strings.Count(strings.TrimSuffix(errb.String(), "\n"), "\n") > 0 {
				t.Errorf("error is not one line: %q", errb.String())
			}
		})
	}
}

func TestParse_precedence(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		delay   time.Duration
		targets []string
		wantErr string
	}{
		{name: "default", delay: 5 * time.Second},
		{name: "env over default", env: map[string]string{"PODKIT_DRAIN_DELAY": "2s"}, delay: 2 * time.Second},
		{name: "flag over env", args: []string{"--drain-delay=1s"}, env: map[string]string{"PODKIT_DRAIN_DELAY": "2s"}, delay: time.Second},
		{name: "list from env is split on commas", env: map[string]string{"PODKIT_WAIT_FOR": "tcp://a:1, http://b/"}, delay: 5 * time.Second, targets: []string{"tcp://a:1", "http://b/"}},
		{name: "list flag repeats, env ignored", args: []string{"--wait-for", "x", "--wait-for", "y"}, env: map[string]string{"PODKIT_WAIT_FOR": "z"}, delay: 5 * time.Second, targets: []string{"x", "y"}},
		{name: "bad env names variable and flag", env: map[string]string{"PODKIT_DRAIN_DELAY": "later"}, wantErr: `PODKIT_DRAIN_DELAY (--drain-delay): invalid value "later": want a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var list []string
			var d time.Duration
			var n int
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			testCommand(&list, &d, &n).Setup(fs)
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			_, err := Parse(fs, tt.args, lookup)
			if tt.wantErr != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.delay {
				t.Errorf("drain-delay = %s, want %s", d, tt.delay)
			}
			if strings.Join(list, "|") != strings.Join(tt.targets, "|") {
				t.Errorf("wait-for = %q, want %q", list, tt.targets)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"admin-addr":     "PODKIT_ADMIN_ADDR",
		"listen":         "PODKIT_LISTEN",
		"exit-when-done": "PODKIT_EXIT_WHEN_DONE",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMain_unknownEnv: a PODKIT_ variable that no flag of the command reads
// is warned about on stderr, one line each, naming the closest flag when
// one is close; the command still runs.
func TestMain_unknownEnv(t *testing.T) {
	var list []string
	var d time.Duration
	var n int
	cmds := []Command{testCommand(&list, &d, &n)}
	cmds[0].Env = []string{"PODKIT_SERVER"}
	t.Setenv("PODKIT_SERVER", "http://x") // declared by the command: no warning
	t.Setenv("PODKIT_DRAIN_DELAI", "1s")  // misspelled --drain-delay
	t.Setenv("PODKIT_FROBNICATE", "x")    // nothing close
	t.Setenv("PODKIT_COUNT", "4")         // a flag: no warning
	t.Setenv("PODKIT_REQUIRE_DEPS", "1")  // podkit's own, not a flag
	t.Setenv("PODKITTEN", "1")            // not PODKIT_
	t.Setenv("PODKIT_WORKER_ID", "w-1")   // set by a worker for a podkit command it runs
	var out, errb bytes.Buffer
	if code := Main(context.Background(), cmds, []string{"thing"}, IO{Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if n != 4 {
		t.Errorf("--count = %d, want 4 from PODKIT_COUNT", n)
	}
	// Compare only the lines about the variables set here: the test's own
	// environment may carry others.
	var got []string
	for _, line := range strings.SplitAfter(errb.String(), "\n") {
		for _, v := range []string{"PODKIT_DRAIN_DELAI", "PODKIT_FROBNICATE", "PODKIT_COUNT", "PODKIT_REQUIRE_DEPS", "PODKITTEN", "PODKIT_SERVER", "PODKIT_WORKER_ID"} {
			if strings.Contains(line, v+" ") {
				got = append(got, line)
			}
		}
	}
	want := []string{
		"podkit thing: warning: PODKIT_DRAIN_DELAI is set but no flag of this command reads it (did you mean PODKIT_DRAIN_DELAY, --drain-delay?)\n",
		"podkit thing: warning: PODKIT_FROBNICATE is set but no flag of this command reads it\n",
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, ""), strings.Join(want, ""))
	}
}
