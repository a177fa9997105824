package election_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/election"
)

// A single replica with the default raft backend elects itself; the
// application asks it who leads (here in-process; over HTTP it is
// GET /leader on --listen).
func Example() {
	cfg := election.DefaultConfig()
	cfg.ID = "replica-1"
	cfg.Advertise = "10.0.0.7:8080"
	cfg.Listen = "127.0.0.1:0"
	e, err := election.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	opts := container.DefaultOptions()
	opts.AdminAddr = "off"
	opts.DrainDelay = 0
	opts.Logger = slog.New(slog.DiscardHandler)
	done := make(chan error, 1)
	go func() { done <- container.Run(ctx, e, opts) }()

	for e.Leader().Leader == "" {
		select {
		case <-e.Changed():
		case <-time.After(10 * time.Second):
			fmt.Println("no leader")
			return
		}
	}
	st := e.Leader()
	fmt.Println("leader:", st.Leader, "self:", st.Self, "address:", st.Address, "epoch > 0:", st.Epoch > 0)
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// leader: replica-1 self: true address: 10.0.0.7:8080 epoch > 0: true
	// stopped: <nil>
}
