package dbwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/podkit/podkit/container"
)

// RedisTarget is a parsed --redis address.
type RedisTarget struct {
	Network  string // "tcp" or "unix"
	Addr     string // host:port, or a socket path
	Username string // for AUTH username password (Redis 6 ACLs)
	DB       int    // SELECTed after connecting when not 0
}

// DefaultRedisPort is added to a host given without a port.
const DefaultRedisPort = "6379"

// ParseRedisTarget parses host:port, redis://[user@]host[:port][/db] or
// unix:///path/to/socket. A password in the address is refused: passwords
// come from a file.
func ParseRedisTarget(s string) (RedisTarget, error) {
	if s == "" {
		return RedisTarget{}, errors.New("empty address")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			// A bare host: add the default port.
			if strings.ContainsAny(s, "/@ ") {
				return RedisTarget{}, fmt.Errorf("%q is not host:port, redis://host:port/db or unix:///path", s)
			}
			host, port = s, DefaultRedisPort
		}
		if err := checkPort(port); err != nil {
			return RedisTarget{}, fmt.Errorf("%q: %w", s, err)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		return RedisTarget{Network: "tcp", Addr: net.JoinHostPort(host, port)}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return RedisTarget{}, fmt.Errorf("%q: %v", s, unwrapURLErr(err))
	}
	if _, has := u.User.Password(); has {
		return RedisTarget{}, fmt.Errorf("%q carries a password; put it in the password file instead", container.RedactURL(s))
	}
	t := RedisTarget{Username: u.User.Username()}
	switch u.Scheme {
	case "redis":
		if u.Hostname() == "" {
			return RedisTarget{}, fmt.Errorf("%q: missing host", s)
		}
		port := u.Port()
		if port == "" {
			port = DefaultRedisPort
		}
		if err := checkPort(port); err != nil {
			return RedisTarget{}, fmt.Errorf("%q: %w", s, err)
		}
		t.Network, t.Addr = "tcp", net.JoinHostPort(u.Hostname(), port)
		if p := strings.Trim(u.Path, "/"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return RedisTarget{}, fmt.Errorf("%q: database %q is not a number", s, p)
			}
			t.DB = n
		}
	case "unix":
		if u.Path == "" {
			return RedisTarget{}, fmt.Errorf("%q: missing socket path", s)
		}
		t.Network, t.Addr = "unix", u.Path
		if db := u.Query().Get("db"); db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 {
				return RedisTarget{}, fmt.Errorf("%q: db %q is not a number", s, db)
			}
			t.DB = n
		}
	default:
		return RedisTarget{}, fmt.Errorf("%q: unknown scheme %q (want redis:// or unix://)", s, u.Scheme)
	}
	return t, nil
}

// String returns the address, as used in the addr label.
func (t RedisTarget) String() string {
	if t.Network == "unix" {
		return "unix://" + t.Addr
	}
	return t.Addr
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

func unwrapURLErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedisConn is one connection to a Redis server, used by one goroutine at
// a time.
type RedisConn struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

// DialRedis connects to t, authenticates with password (when not empty) and
// selects t.DB.
func DialRedis(ctx context.Context, t RedisTarget, password string) (*RedisConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, t.Network, t.Addr)
	if err != nil {
		return nil, err
	}
	rc := &RedisConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}
	var cmds [][]string
	if password != "" {
		if t.Username != "" {
			cmds = append(cmds, []string{"AUTH", t.Username, password})
		} else {
			cmds = append(cmds, []string{"AUTH", password})
		}
	}
	if t.DB != 0 {
		cmds = append(cmds, []string{"SELECT", strconv.Itoa(t.DB)})
	}
	if len(cmds) > 0 {
		replies, err := rc.Pipeline(ctx, cmds...)
		if err != nil {
			c.Close()
			return nil, err
		}
		for i, v := range replies {
			if v.Kind == KindError {
				c.Close()
				return nil, fmt.Errorf("%s: %w", cmds[i][0], RedisError(v.Str))
			}
		}
	}
	return rc, nil
}

// Close closes the connection.
func (c *RedisConn) Close() error { return c.c.Close() }

// Do sends one command and reads its reply. An error reply is returned as
// a RedisError.
func (c *RedisConn) Do(ctx context.Context, args ...string) (Value, error) {
	vs, err := c.Pipeline(ctx, args)
	if err != nil {
		return Value{}, err
	}
	if vs[0].Kind == KindError {
		return vs[0], RedisError(vs[0].Str)
	}
	return vs[0], nil
}

// Pipeline sends every command in one write and reads one reply for each.
// Error replies are returned as values of KindError; the error is only for
// I/O and protocol failures, after which the connection must be closed.
func (c *RedisConn) Pipeline(ctx context.Context, cmds ...[]string) ([]Value, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Time{}
	}
	if err := c.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.buf = c.buf[:0]
	for _, args := range cmds {
		c.buf = AppendCommand(c.buf, args...)
	}
	if _, err := c.c.Write(c.buf); err != nil {
		return nil, ctxErr(ctx, err)
	}
	out := make([]Value, 0, len(cmds))
	for range cmds {
		v, err := ReadValue(c.r)
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
