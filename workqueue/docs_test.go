package workqueue_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/client"
	"github.com/podkit/podkit/workqueue/worker"
)

// quickStart returns the commands of the first sh block of docs/queue.md,
// each split into its arguments after "podkit", comments removed.
func quickStart(t *testing.T) [][]string {
	t.Helper()
	doc, err := os.ReadFile("../docs/queue.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/queue.md has no sh block")
	}
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] != "podkit" {
			t.Fatalf("quick start line %q is not a podkit command", line)
		}
		cmds = append(cmds, f[1:])
	}
	return cmds
}

// daemon reports whether args (after "podkit") run a long-lived process:
// the coordinator or a worker, not a command-line verb.
func daemon(args []string) bool {
	switch {
	case args[0] == "worker":
		return true
	case args[0] == "queue":
		return len(args) < 2 || !map[string]bool{"stat": true, "push": true, "ls": true, "replay": true}[args[1]]
	}
	return false
}

func flagValue(args []string, name string) (string, int) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], i + 1
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, i
		}
		if a == "--" {
			break
		}
	}
	return "", -1
}

// TestDocsQuickStart runs the quick start at the top of docs/queue.md as
// written, on one machine. What a test machine must change is changed and
// nothing else: the coordinator's port (the doc's "127.0.0.1:8080"), its
// data directory, and the admin listeners (after checking that the
// commands as written do not share one, which made the worker fail to
// start).
func TestDocsQuickStart(t *testing.T) {
	cmds := quickStart(t)
	admins := map[string]string{}
	for _, args := range cmds {
		if !daemon(args) {
			continue
		}
		addr, _ := flagValue(args, "admin-addr")
		if addr == "" {
			addr = container.DefaultAdminAddr
		}
		if other, ok := admins[addr]; ok {
			t.Errorf("the quick start runs %q and %q on one admin address %s: the second cannot start", other, strings.Join(args, " "), addr)
		}
		admins[addr] = strings.Join(args, " ")
	}

	bin := testdeps.BuildPodkit(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "make-thumbnail.sh"), []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "images.ndjson"), []byte(`{"payload":{"image":"s3://b/1.png"}}`+"\n"+`{"payload":{"image":"s3://b/2.png"},"priority":5}`+"\n"), 0o644)
	addr := testdeps.FreePort(t)
	server := "http://" + addr
	var ran []string
	for i, args := range cmds {
		args = append([]string(nil), args...)
		for j, a := range args {
			a = strings.ReplaceAll(a, "127.0.0.1:8080", addr)
			a = strings.ReplaceAll(a, "/var/lib/queue", filepath.Join(dir, "data"))
			args[j] = a
		}
		if !daemon(args) {
			b, err := runIn(dir, bin, args...)
			if err != nil {
				t.Fatalf("podkit %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			ran = append(ran, args[1])
			if args[1] == "push" {
				waitDrained(t, client.New(server, nil), "thumbnails", 30*time.Second)
			}
			if args[1] == "stat" && !strings.Contains(string(b), "thumbnails") {
				t.Errorf("stat shows no thumbnails queue:\n%s", b)
			}
			continue
		}
		if _, at := flagValue(args, "admin-addr"); at >= 0 {
			if strings.HasPrefix(args[at], "--admin-addr=") {
				args[at] = "--admin-addr=" + testdeps.FreePort(t)
			} else {
				args[at] = testdeps.FreePort(t)
			}
		} else {
			args = append([]string{args[0], "--admin-addr", testdeps.FreePort(t)}, args[1:]...)
		}
		testdeps.StartIn(t, dir, args[0]+strings.Repeat("'", i), bin, args...)
		if args[0] == "queue" {
			testdeps.WaitHTTP(t, server+"/queues", 20*time.Second)
		}
	}
	st, err := client.New(server, nil).Stats(context.Background(), "thumbnails")
	if err != nil || st.Done != 2 {
		t.Errorf("after the quick start: %+v %v; want 2 done", st, err)
	}
	if strings.Join(ran, ",") != "push,stat" {
		t.Errorf("ran the verbs %v, want push and stat", ran)
	}
}

func runIn(dir, bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// docSection returns the text of the "## title" section of docs/queue.md.
func docSection(t *testing.T, title string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/queue.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("docs/queue.md has no section %q", title)
	}
	sec, _, _ := strings.Cut(rest, "\n## ")
	return sec
}

// TestDocsRolesTable: the roles table of docs/queue.md#security is the
// route table the coordinator serves and checks, row for row.
func TestDocsRolesTable(t *testing.T) {
	row := regexp.MustCompile("(?m)^\\| `([A-Z]+) (/[^`]*)` \\| ([a-z, ]+) \\|$")
	var doc []string
	for _, m := range row.FindAllStringSubmatch(docSection(t, "Security"), -1) {
		doc = append(doc, m[1]+" "+m[2]+": "+strings.ReplaceAll(m[3], " ", ""))
	}
	var code []string
	for _, r := range workqueue.Routes() {
		code = append(code, r.Method+" "+r.Path+": "+strings.Join(r.Roles, ","))
	}
	if !slices.Equal(doc, code) {
		t.Errorf("docs/queue.md#security's roles table:\n  %s\nthe route table (workqueue.Routes):\n  %s", strings.Join(doc, "\n  "), strings.Join(code, "\n  "))
	}
}

// TestDocsFlags: every flag of the coordinator, the worker and the
// command-line verbs is in docs/queue.md (the contract's common flags are
// container.md's).
func TestDocsFlags(t *testing.T) {
	docb, err := os.ReadFile("../docs/queue.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(docb)
	common := flag.NewFlagSet("common", flag.ContinueOnError)
	opts := container.DefaultOptions()
	opts.RegisterFlags(common)
	check := func(who string, fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) {
			if common.Lookup(f.Name) != nil {
				return
			}
			if !regexp.MustCompile(`(^|[^\w-])--` + regexp.QuoteMeta(f.Name) + `([^\w-]|$)`).MatchString(doc) {
				t.Errorf("%s: flag --%s is not in docs/queue.md", who, f.Name)
			}
		})
	}
	qfs := flag.NewFlagSet("queue", flag.ContinueOnError)
	qcfg := workqueue.DefaultConfig()
	qcfg.RegisterFlags(qfs)
	check("podkit queue", qfs)
	wfs := flag.NewFlagSet("worker", flag.ContinueOnError)
	wcfg := worker.DefaultConfig()
	wcfg.RegisterFlags(wfs)
	check("podkit worker", wfs)
	for _, v := range workqueue.Command().Verbs {
		fs := flag.NewFlagSet(v.Name, flag.ContinueOnError)
		v.Setup(fs)
		check("podkit queue "+v.Name, fs)
	}
}
