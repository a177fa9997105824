package broker

import (
	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
)

// Command is the `podkit broker` subcommand.
func Command() cli.Command {
	return container.FlagCommand("broker",
		"service brokering: a local port for each upstream, balanced over endpoints found by discovery (static, file, DNS, Kubernetes), with health checks, outlier ejection, retries and limits",
		"--listen ADDR --source SOURCE [--mode tcp|http] [flags] | --config FILE",
		DefaultConfig, New)
}
