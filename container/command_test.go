package container_test

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestCommandVerbs: container.Verbs gives the command verbs, each with its
// own flags; other arguments run the component; the component's --help is
// unchanged by them.
func TestCommandVerbs(t *testing.T) {
	var said string
	cmd := container.Command("one-shot", "does one thing", "[flags]", func(fs *flag.FlagSet) container.BuildFunc {
		return func(args []string) (container.Component, error) { return oneShot{}, container.NoArgs(args) }
	}, container.Verbs(cli.Verb{Name: "say", Summary: "say it", Setup: func(fs *flag.FlagSet) cli.Runner {
		word := fs.String("word", "hi", "the word")
		return func(ctx context.Context, args []string, stdio cli.IO) error {
			said = *word + " " + strings.Join(args, " ")
			return nil
		}
	}}), container.LogToStderr())
	run := func(args ...string) (int, string, string) {
		var out, errb testdeps.Buffer
		code := cli.Main(context.Background(), []cli.Command{cmd}, append([]string{"one-shot"}, args...),
			cli.IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		return code, out.String(), errb.String()
	}
	if code, _, stderr := run("say", "there", "--word", "hello"); code != 0 || said != "hello there" {
		t.Fatalf("say: exit %d, said %q; stderr %s", code, said, stderr)
	}
	if code, stdout, stderr := run("--admin-addr", "off", "--drain-delay", "0s"); code != 0 || stdout != "" || !strings.Contains(stderr, "did the work") {
		t.Fatalf("the component: exit %d, stdout %q, stderr %q; want its logs on stderr", code, stdout, stderr)
	}
	if code, stdout, _ := run("--help"); code != 0 || strings.Contains(stdout, "say") || !strings.Contains(stdout, "--admin-addr") {
		t.Fatalf("--help: exit %d:\n%s", code, stdout)
	}
}
