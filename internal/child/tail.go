package child

import (
	"strings"
	"sync"
)

// Tail is an io.Writer that keeps the last Max bytes written to it: a
// child's stderr, for the error message that reports its failure. It is
// safe for concurrent use. Its zero value keeps nothing.
type Tail struct {
	// Max is how many bytes are kept.
	Max int

	mu  sync.Mutex
	buf []byte
	cut bool
}

// NewTail returns a Tail that keeps max bytes.
func NewTail(max int) *Tail { return &Tail{Max: max} }

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Max <= 0 {
		t.cut = t.cut || len(p) > 0
		return len(p), nil
	}
	if len(p) >= t.Max {
		t.cut = t.cut || len(t.buf) > 0 || len(p) > t.Max
		t.buf = append(t.buf[:0], p[len(p)-t.Max:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.Max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.Max:]...)
		t.cut = true
	}
	return len(p), nil
}

// String returns the bytes kept.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Truncated reports whether bytes were dropped from the start.
func (t *Tail) Truncated() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cut
}

// Suffix is the tail for the end of an error message: "" if nothing
// (but newlines) was written, else ": " and the text without trailing
// newlines, with "…" first when its start was dropped.
func (t *Tail) Suffix() string {
	s := strings.TrimRight(t.String(), "\n")
	if s == "" {
		return ""
	}
	if t.Truncated() {
		return ": …" + s
	}
	return ": " + s
}
