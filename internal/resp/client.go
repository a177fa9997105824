package resp

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// DialOptions configure Dial.
type DialOptions struct {
	// Username is sent with the password (AUTH username password, Redis 6
	// ACLs) when both are set.
	Username string
	// Password, when set, is sent with AUTH after connecting.
	Password string
	// DB is SELECTed after connecting when not 0.
	DB int
	// Timeout, when positive, bounds the dial and each later call, within
	// the context's own deadline.
	Timeout time.Duration
}

// Client is one RESP2 connection to a Redis server (or anything speaking
// its protocol). It is not safe for concurrent use. After an I/O or
// protocol error the connection is in an unknown state: close it.
type Client struct {
	conn    net.Conn
	r       *Reader
	timeout time.Duration
	buf     []byte
}

// Dial connects to addr on network ("tcp" or "unix"), then authenticates
// and selects the database as o says.
func Dial(ctx context.Context, network, addr string, o DialOptions) (*Client, error) {
	d := net.Dialer{Timeout: o.Timeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := NewClient(conn, o.Timeout)
	var cmds [][]string
	switch {
	case o.Password != "" && o.Username != "":
		cmds = append(cmds, []string{"AUTH", o.Username, o.Password})
	case o.Password != "":
		cmds = append(cmds, []string{"AUTH", o.Password})
	}
	if o.DB != 0 {
		cmds = append(cmds, []string{"SELECT", strconv.Itoa(o.DB)})
	}
	if len(cmds) > 0 {
		replies, err := c.Pipeline(ctx, cmds...)
		if err != nil {
			conn.Close()
			return nil, err
		}
		for i, v := range replies {
			if v.Kind == KindError {
				conn.Close()
				return nil, fmt.Errorf("%s: %w", cmds[i][0], Error(v.Str))
			}
		}
	}
	return c, nil
}

// NewClient returns a Client on an established connection; timeout, when
// positive, bounds each call.
func NewClient(conn net.Conn, timeout time.Duration) *Client {
	return &Client{conn: conn, r: NewReader(conn, 16<<10, DefaultLimits), timeout: timeout}
}

// LocalAddr is the connection's local address, as the server shows it
// (CLIENT LIST, SLOWLOG entries).
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends one command and reads its reply. An error reply is returned
// both as the value and as an Error.
func (c *Client) Do(ctx context.Context, args ...string) (Value, error) {
	vs, err := c.Pipeline(ctx, args)
	if err != nil {
		return Value{}, err
	}
	if vs[0].Kind == KindError {
		return vs[0], Error(vs[0].Str)
	}
	return vs[0], nil
}

// Pipeline sends every command in one write and reads one reply for each.
// Error replies are values of KindError; the error is only for I/O and
// protocol failures (and the context ending), after which the connection
// must be closed.
func (c *Client) Pipeline(ctx context.Context, cmds ...[]string) ([]Value, error) {
	deadline, _ := ctx.Deadline()
	if c.timeout > 0 {
		if d := time.Now().Add(c.timeout); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.buf = c.buf[:0]
	for _, args := range cmds {
		c.buf = AppendArray(c.buf, len(args))
		for _, a := range args {
			c.buf = AppendBulkString(c.buf, a)
		}
	}
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, ctxErr(ctx, err)
	}
	out := make([]Value, 0, len(cmds))
	for range cmds {
		v, err := c.r.ReadValue()
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// ctxErr prefers the context's error when it caused err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
