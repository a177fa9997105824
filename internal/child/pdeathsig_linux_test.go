package child_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/child"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestKilledOnParentDeath runs this test binary as a parent that starts a
// child and is then killed with SIGKILL: the child must die with it.
func TestKilledOnParentDeath(t *testing.T) {
	if os.Getenv("PODKIT_CHILD_PARENT") == "1" {
		p, err := child.Start(exec.Command("sleep", "300"), child.Options{})
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(strconv.Itoa(p.Pid()) + "\n")
		p.Wait()
		os.Exit(0)
	}
	if !child.KillsOnParentDeath {
		t.Fatal("child.KillsOnParentDeath is false on Linux")
	}
	out := child.NewTail(64)
	parent := exec.Command(os.Args[0], "-test.run=^TestKilledOnParentDeath$")
	parent.Env = append(os.Environ(), "PODKIT_CHILD_PARENT=1")
	parent.Stdout = out
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	testdeps.WaitFor(t, "the child's pid", func() bool {
		pid, _ = strconv.Atoi(strings.TrimSpace(out.String()))
		return pid > 0
	})
	parent.Process.Kill()
	parent.Wait()
	testdeps.WaitFor(t, "the child to die with its parent", func() bool { return !alive(pid) || zombie(pid) })
}
