package wireprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/podkit/podkit/internal/resp"
)

// redisLimits bound the reply a PING may get: +PONG, or an error line.
var redisLimits = resp.Limits{MaxBulk: 4096, MaxArgs: 16, MaxInline: 4096}

var pingCommand = []byte("*1\r\n$4\r\nPING\r\n")

// Redis sends PING and expects +PONG (a bulk "PONG" too, as some proxies
// answer).
//
// Error replies: NOAUTH, WRONGPASS and NOPERM mean the server is up and
// wants credentials the probe does not send, so they count as healthy
// (the application authenticates on its own connections). LOADING (the
// dataset is being loaded), MASTERDOWN (a replica that lost its primary
// and does not serve stale data), BUSY (a script is running) and any
// other error reply count as unhealthy, with the server's text.
func Redis(ctx context.Context, c net.Conn) (err error) {
	stop, err := withDeadline(ctx, "redis probe", c)
	if err != nil {
		return err
	}
	defer func() { err = stop(err) }()
	if _, err := c.Write(pingCommand); err != nil {
		return fmt.Errorf("sending PING: %w", err)
	}
	return readPong(resp.NewReader(c, 512, redisLimits))
}

// readPong reads the reply to PING.
func readPong(r *resp.Reader) error {
	raw, err := r.ReadReply()
	if err != nil {
		if errors.Is(err, resp.ErrProtocol) || errors.Is(err, resp.ErrTooLarge) {
			return fmt.Errorf("%w: not a Redis reply to PING: %v", ErrProtocol, err)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("connection closed before a reply to PING")
		}
		return fmt.Errorf("reading the reply to PING: %w", err)
	}
	return pongReply(raw)
}

// pongReply judges one raw reply to PING.
func pongReply(raw []byte) error {
	v, err := resp.ParseValue(raw)
	if err != nil {
		return fmt.Errorf("%w: not a Redis reply to PING: %v", ErrProtocol, err)
	}
	switch v.Kind {
	case resp.KindSimple, resp.KindBulk:
		if !v.Nil && strings.EqualFold(v.Str, "PONG") {
			return nil
		}
	case resp.KindError:
		code, _, _ := strings.Cut(v.Str, " ")
		switch code {
		case "NOAUTH", "WRONGPASS", "NOPERM":
			return nil
		}
		return fmt.Errorf("%w: PING answered %q", ErrUnhealthy, v.Str)
	}
	return fmt.Errorf("%w: PING answered %s, want +PONG", ErrProtocol, printable(raw, 64))
}
