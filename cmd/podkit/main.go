// Command podkit is one binary with a subcommand per podkit component:
// reusable containers for the container design patterns. Run `podkit help`
// for the list.
package main

import (
	"context"
	"os"

	"github.com/podkit/podkit/adapter/health"
	"github.com/podkit/podkit/adapter/logs"
	"github.com/podkit/podkit/adapter/metrics"
	"github.com/podkit/podkit/ambassador/broker"
	"github.com/podkit/podkit/ambassador/shard"
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/cmd/podkit/internal/certs"
	"github.com/podkit/podkit/cmd/podkit/internal/demo"
	"github.com/podkit/podkit/cmd/podkit/internal/sampleapp"
	"github.com/podkit/podkit/election"
	"github.com/podkit/podkit/election/backends"
	"github.com/podkit/podkit/sidecar/await"
	"github.com/podkit/podkit/sidecar/configsync"
	"github.com/podkit/podkit/sidecar/tlsproxy"
	"github.com/podkit/podkit/sidecar/topz"
	"github.com/podkit/podkit/workqueue"
	"github.com/podkit/podkit/workqueue/worker"
)

// commands is the subcommand table.
func commands() []cli.Command {
	return []cli.Command{
		await.Command(),
		broker.Command(),
		certs.Command(),
		configsync.Command(),
		demo.Command(),
		election.Command(backends.All()...), // raft, etcd, kubernetes
		health.Command(),
		logs.Command(),
		metrics.Command(),
		sampleapp.Command(),
		shard.Command(),
		tlsproxy.Command(),
		topz.Command(),
		workqueue.Command(),
		worker.Command(),
	}
}

func main() {
	stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(cli.Main(context.Background(), commands(), os.Args[1:], stdio))
}
