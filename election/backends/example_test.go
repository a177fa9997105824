package backends_test

import (
	"context"
	"os"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/election"
	"github.com/podkit/podkit/election/backends"
)

// A program of its own that runs podkit elect with every backend, as
// cmd/podkit does; with election.Command() alone it would offer raft and
// link neither the etcd client nor client-go.
func Example() {
	stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	commands := []cli.Command{election.Command(backends.All()...)}
	os.Exit(cli.Main(context.Background(), commands, os.Args[1:], stdio))
}
