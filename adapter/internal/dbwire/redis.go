// Package dbwire is the database-client plumbing shared by podkit's
// adapters: Redis targets (spoken to with internal/resp's client), and one
// text-result query interface over MySQL/MariaDB (go-sql-driver/mysql)
// and PostgreSQL (pgx), with target parsing that keeps passwords out of
// command lines (they come from files).
package dbwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/resp"
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

// DialRedis connects to t, authenticates with password (when not empty,
// as t.Username when set) and selects t.DB.
func DialRedis(ctx context.Context, t RedisTarget, password string) (*resp.Client, error) {
	return resp.Dial(ctx, t.Network, t.Addr, resp.DialOptions{Username: t.Username, Password: password, DB: t.DB})
}
