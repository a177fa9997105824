package httpproxy

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// addSeeds adds each seed to f's corpus, as raw bytes.
func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

// firstHead cuts b after its first CRLF CRLF, as the engine hands a head
// to the parsers; false if b has none.
func firstHead(b []byte) ([]byte, bool) {
	i := bytes.Index(b, crlfcrlf)
	if i < 0 {
		return nil, false
	}
	return b[:i+4], true
}
