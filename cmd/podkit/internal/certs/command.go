package certs

import (
	"context"
	"flag"
	"strings"

	"github.com/podkit/podkit/cli"
)

// Command is the `podkit certs` subcommand.
func Command() cli.Command {
	return cli.Command{
		Name:     "certs",
		Summary:  "write a development CA, a server certificate and client certificates (for examples; not a production CA)",
		Synopsis: "--dir DIR [--server NAME[,NAME...]] [--client NAME]... [--days N] [--force | --keep-existing]",
		Setup: func(fs *flag.FlagSet) cli.Runner {
			cfg := DefaultConfig()
			var servers, clients cli.StringList
			fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "write ca.crt, ca.key, server.crt, server.key and NAME.crt, NAME.key to this `directory` (an existing ca.crt and ca.key there are used to issue)")
			fs.Var(&servers, "server", "DNS names and IP addresses of server.crt: `NAME[,NAME...]` (repeatable)")
			fs.Var(&clients, "client", "issue the client certificate NAME.crt with subject CN=`NAME` (repeatable)")
			fs.IntVar(&cfg.Days, "days", cfg.Days, "how long the server and client certificates are valid, in days")
			fs.BoolVar(&cfg.Force, "force", cfg.Force, "replace server and client files that exist")
			fs.BoolVar(&cfg.KeepExisting, "keep-existing", cfg.KeepExisting, "keep server and client files that exist and write only the missing ones (a one-shot service run again)")
			return func(ctx context.Context, args []string, stdio cli.IO) error {
				if len(args) > 0 {
					return cli.Usagef("unexpected argument %q (names go in --server and --client)", args[0])
				}
				for _, s := range servers {
					for _, n := range strings.Split(s, ",") {
						if n = strings.TrimSpace(n); n != "" {
							cfg.Servers = append(cfg.Servers, n)
						}
					}
				}
				cfg.Clients = clients
				if err := cfg.Validate(); err != nil {
					return &cli.UsageError{Msg: strings.ReplaceAll(err.Error(), "\n", "; ")}
				}
				return Issue(cfg, stdio.Stdout)
			}
		},
	}
}
