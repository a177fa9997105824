package shard

import (
	"context"
	"os"
	"runtime/pprof"
	"testing"

	"github.com/podkit/podkit/cli"
)

// TestMain lets the test binary act as `podkit shard` when
// PODKIT_SHARD_AS_COMMAND=1, so tests can run the component as a real
// subprocess (signals, exit codes) without the podkit binary.
func TestMain(m *testing.M) {
	if os.Getenv("PODKIT_SHARD_AS_COMMAND") == "1" {
		stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		if f := os.Getenv("PODKIT_SHARD_CPUPROFILE"); f != "" { // for profiling the hot path
			out, err := os.Create(f)
			if err == nil {
				pprof.StartCPUProfile(out)
				defer pprof.StopCPUProfile()
			}
		}
		code := cli.Main(context.Background(), []cli.Command{Command()}, os.Args[1:], stdio)
		pprof.StopCPUProfile()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
