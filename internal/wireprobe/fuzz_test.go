package wireprobe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pipeProbe runs probe over a net.Pipe whose other end reads the request
// (n bytes), writes data and hangs up.
func pipeProbe(t *testing.T, probe Probe, n int, data []byte) error {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		if _, err := io.ReadFull(server, make([]byte, n)); err != nil {
			return
		}
		server.Write(data)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := probe(ctx, client)
	client.Close()
	<-done
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("probe did not finish on a peer that wrote %d bytes and hung up: %v", len(data), err)
	}
	return err
}

func FuzzRedis(f *testing.F) {
	for _, s := range []string{"+PONG\r\n", "$4\r\nPONG\r\n", "-NOAUTH Authentication required.\r\n", "-LOADING x\r\n",
		"*1\r\n$4\r\nPONG\r\n", "$-1\r\n", "+PONG", "HTTP/1.1 400 Bad Request\r\n\r\n", "$999999\r\n", ":1\r\n", "-\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := pipeProbe(t, Redis, len(pingCommand), data)
		if err == nil && !bytes.HasPrefix(data, []byte("+")) && !bytes.HasPrefix(data, []byte("$4\r\n")) && !bytes.HasPrefix(data, []byte("-")) {
			t.Fatalf("healthy on %q", data)
		}
		if err == nil && bytes.HasPrefix(data, []byte("-")) && !bytes.Contains(data, []byte("AUTH")) && !bytes.Contains(data, []byte("WRONGPASS")) && !bytes.Contains(data, []byte("NOPERM")) {
			t.Fatalf("healthy on error reply %q", data)
		}
	})
}

func FuzzMySQL(f *testing.F) {
	for _, s := range []string{
		"\x0f\x00\x00\x00\x0a11.8.3-Maria\x00",
		"\x17\x00\x00\x00\xff\x10\x04Too many connections",
		"\x1d\x00\x00\x00\xff\x10\x04#08004Too many connections",
		"\x01\x00\x00\x00\xff",
		"\xff\xff\xff\x00",
		"\x05\x00\x00\x01\x0ax\x00",
		"\x06\x00\x00\x00\x093.20\x00",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := pipeProbe(t, MySQL, 0, data)
		if err == nil && (len(data) < 6 || data[3] != 0 || data[4] != 10) {
			t.Fatalf("healthy on %q", data)
		}
	})
}

func FuzzPostgres(f *testing.F) {
	for _, s := range []string{"S", "N", "E\x00\x00\x00\x0bSFATAL\x00\x00", "Eold style error\x00", "E\x00\x00\x01\x00S", "E\xff\xff\xff\xff", "E", "H", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := pipeProbe(t, Postgres, len(sslRequest), data)
		if err == nil && (len(data) == 0 || (data[0] != 'S' && data[0] != 'N')) {
			t.Fatalf("healthy on %q", data)
		}
		if err != nil && len(data) > 0 && (data[0] == 'S' || data[0] == 'N') {
			t.Fatalf("%q: %v", data, err)
		}
	})
}

// FuzzParsePGError: the error decoder never panics and never claims a
// whole message that is not in b.
func FuzzParsePGError(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x0bSFATAL\x00\x00"))
	f.Add([]byte("old style\x00"))
	f.Add([]byte("\x00\x00\x00\x05"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _ := parsePGError(b)
		if s == "" {
			t.Fatalf("empty description of %q", b)
		}
	})
}
