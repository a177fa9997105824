package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/upstream"
)

// A pool over a static list, picking by weight; each pick is released with
// how the connection went, which feeds outlier ejection.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := discovery.Parse("static:10.0.0.1:6379;weight=2,10.0.0.2:6379", discovery.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := discovery.StartWatch(ctx, src, discovery.WatchOptions{Name: "redis", Logger: slog.New(slog.DiscardHandler)})
	if err := w.WaitSynced(ctx); err != nil {
		fmt.Println(err)
		return
	}
	pool, err := upstream.New(upstream.Config{
		Policy: upstream.RoundRobin,
		// Check: upstream.CheckConfig{Checker: upstream.TCPCheck(nil)},
		Outlier: upstream.OutlierConfig{ConsecutiveFailures: 5, BaseEjection: 30 * time.Second},
		Limits:  upstream.Limits{MaxConnections: 1000},
		Logger:  slog.New(slog.DiscardHandler),
	}, w)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	go pool.Run(ctx)

	for range 3 {
		e, err := pool.Acquire(upstream.Hint{Kind: upstream.Conn})
		switch {
		case errors.Is(err, upstream.ErrNoEndpoint), errors.Is(err, upstream.ErrOverloaded):
			fmt.Println("refused:", err)
			continue
		case err != nil:
			fmt.Println(err)
			return
		}
		fmt.Println("connect to", e.Addr())
		// ... dial e.Addr(), proxy, then:
		pool.Release(e, upstream.Conn, upstream.OK)
	}
	fmt.Println("usable:", pool.Usable())
	// Output:
	// connect to 10.0.0.1:6379
	// connect to 10.0.0.2:6379
	// connect to 10.0.0.1:6379
	// usable: 2
}
