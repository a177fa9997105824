// Package wireprobe checks that a server speaks its protocol: a Redis
// PING, a MySQL greeting, a PostgreSQL SSLRequest. A probe runs over a
// connection the caller dialed, takes its deadline from ctx, never
// authenticates and leaves the connection half-way through the
// protocol's handshake: the caller closes it when the probe returns.
//
// The connection is plain TCP, or TLS (tlsconf.Client.Dial) where the
// server speaks TLS from the first byte: Redis on its tls-port, or any of
// the three behind a TLS-terminating proxy. MySQL and PostgreSQL servers
// that do TLS themselves negotiate it inside their protocol, after the
// greeting or the SSLRequest answer, so they are probed in plain TCP.
//
// A ctx without a deadline lets a probe wait as long as a silent server
// keeps the connection open: give it one (the health-check timeout).
//
// A probe says whether a server of the right kind answers and accepts
// connections, not whether a query would succeed: an error names what was
// received (an unexpected reply, the server's own error text and code, or
// a timeout).
package wireprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Probe is the signature the three probes share.
type Probe func(ctx context.Context, c net.Conn) error

// ByName returns the probe named "redis", "mysql" or "postgres".
func ByName(name string) (Probe, bool) {
	switch name {
	case "redis":
		return Redis, true
	case "mysql":
		return MySQL, true
	case "postgres":
		return Postgres, true
	}
	return nil, false
}

// ErrUnhealthy is wrapped by the error of a probe whose server answered
// in its protocol but said it cannot serve (Redis LOADING, a MySQL error
// packet at the greeting, a PostgreSQL error).
var ErrUnhealthy = errors.New("server answered but is not serving")

// ErrProtocol is wrapped by the error of a probe whose peer answered
// something that is not the protocol expected (another kind of server on
// the port).
var ErrProtocol = errors.New("unexpected reply")

// withDeadline sets c's deadline from ctx (clearing any other) and
// interrupts c's reads and writes when ctx is cancelled. The returned
// function undoes the latter and names the probe in err; an I/O timeout
// becomes an error wrapping ctx's.
func withDeadline(ctx context.Context, name string, c net.Conn) (stop func(err error) error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dl, _ := ctx.Deadline()
	if err := c.SetDeadline(dl); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cancel := context.AfterFunc(ctx, func() {
		c.SetDeadline(time.Unix(1, 0))
	})
	return func(err error) error {
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) {
			// The only deadline set on c is ctx's (the timer that fires
			// it may run before ctx records the reason).
			cerr := ctx.Err()
			if cerr == nil {
				cerr = context.DeadlineExceeded
			}
			return fmt.Errorf("%s: no answer in time (%v): %w", name, err, cerr)
		}
		return fmt.Errorf("%s: %w", name, err)
	}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// printable quotes at most n bytes of b for an error message.
func printable(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
