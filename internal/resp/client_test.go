package resp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

func TestClientReal(t *testing.T) {
	addr := testdeps.StartRedis(t, "--requirepass", "pw")
	if addr == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dial(ctx, "tcp", addr, DialOptions{Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("wrong password: %v", err)
	}
	c, err := Dial(ctx, "tcp", addr, DialOptions{Password: "pw", DB: 3, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(ctx, "SET", "k", "v\r\nwith CRLF"); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(ctx, "GET", "k")
	if err != nil || v.Str != "v\r\nwith CRLF" {
		t.Fatalf("GET = %+v, %v", v, err)
	}
	v, _ = c.Do(ctx, "CLIENT", "INFO")
	if !strings.Contains(v.Str, "db=3") {
		t.Fatalf("not on db 3: %q", v.Str)
	}
	if !strings.Contains(v.Str, "laddr="+c.LocalAddr().String()) && !strings.Contains(v.Str, "addr="+c.LocalAddr().String()) {
		t.Fatalf("CLIENT INFO %q does not show the local address %s", v.Str, c.LocalAddr())
	}
	var re Error
	if v, err := c.Do(ctx, "NOSUCHCOMMAND"); !errors.As(err, &re) || v.Kind != KindError || !strings.HasPrefix(string(re), "ERR") {
		t.Fatalf("error reply: %+v, %v", v, err)
	}
	vs, err := c.Pipeline(ctx, []string{"INCR", "n"}, []string{"NOSUCHCOMMAND"}, []string{"INCRBY", "n", "2"})
	if err != nil || len(vs) != 3 || vs[0].Int != 1 || vs[1].Kind != KindError || vs[2].Int != 3 {
		t.Fatalf("Pipeline = %+v, %v", vs, err)
	}

	t.Run("ACL user", func(t *testing.T) {
		if _, err := c.Do(ctx, "ACL", "SETUSER", "probe", "on", ">userpw", "+ping"); err != nil {
			t.Fatal(err)
		}
		u, err := Dial(ctx, "tcp", addr, DialOptions{Username: "probe", Password: "userpw"})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		if v, err := u.Do(ctx, "PING"); err != nil || v.Str != "PONG" {
			t.Fatalf("PING = %+v, %v", v, err)
		}
		if _, err := u.Do(ctx, "GET", "k"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "NOPERM") {
			t.Fatalf("GET as a user without +get: %v", err)
		}
		if _, err := Dial(ctx, "tcp", addr, DialOptions{Username: "probe", Password: "pw"}); !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGPASS") {
			t.Fatalf("wrong user password: %v", err)
		}
	})
}

// TestClientContext: a call ends when its context does, or at the
// client's timeout, against a server that never answers.
func TestClientContext(t *testing.T) {
	addr := testdeps.SilentTCP(t)
	t.Run("cancel", func(t *testing.T) {
		c, err := Dial(context.Background(), "tcp", addr, DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(10 * time.Millisecond); cancel() }()
		if _, err := c.Do(ctx, "PING"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do after cancel = %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		c, err := Dial(context.Background(), "tcp", addr, DialOptions{Timeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var ne net.Error
		if _, err := c.Do(context.Background(), "PING"); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Do past the timeout = %v", err)
		}
	})
}

// TestClientProtocolError: a reply that is not RESP is an ErrProtocol.
func TestClientProtocolError(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		buf := make([]byte, 64)
		b.Read(buf)
		b.Write([]byte("HTTP/1.1 400 Bad Request\r\n"))
		b.Close()
	}()
	c := NewClient(a, 0)
	if _, err := c.Do(context.Background(), "PING"); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Do = %v, want ErrProtocol", err)
	}
}
