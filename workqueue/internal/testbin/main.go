// Command testbin is podkit's queue and worker subcommands alone. Tests
// build it when the podkit binary does not have them yet.
package main

import (
	"context"
	"os"

	"github.com/podkit/podkit/internal/cli"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/worker"
)

func main() {
	stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(cli.Main(context.Background(), []cli.Command{workqueue.Command(), worker.Command()}, os.Args[1:], stdio))
}
