// Package slowlog reads a Redis server's SLOWLOG over a plain RESP
// connection and tracks which entries are new between polls: it notices a
// restart of the server (its run_id changed, or the entry ids went
// backwards) and entries lost between two polls (the first new id is not
// the last seen + 1: the log overflowed slowlog-max-len, or was reset).
package slowlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"
)

// Value is a decoded RESP value.
type Value struct {
	Kind  byte // '+', '-', ':', '$', '*'; 0 for a null bulk string or array
	Str   []byte
	Int   int64
	Array []Value
}

// Limits on what the reader accepts.
const (
	maxBulk  = 64 << 20
	maxArray = 1 << 20
	maxDepth = 8
)

// ErrProtocol is wrapped by errors about malformed replies.
var ErrProtocol = errors.New("malformed RESP reply")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// ReadValue reads one RESP2 value.
func ReadValue(r *bufio.Reader) (Value, error) { return readValue(r, 0) }

func readValue(r *bufio.Reader, depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, protoErr("nesting deeper than %d", maxDepth)
	}
	line, err := readLine(r)
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, protoErr("empty line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+', '-':
		return Value{Kind: kind, Str: bytes.Clone(rest)}, nil
	case ':':
		n, err := strconv.ParseInt(string(rest), 10, 64)
		if err != nil {
			return Value{}, protoErr("bad integer %q", rest)
		}
		return Value{Kind: kind, Int: n}, nil
	case '$':
		n, err := strconv.Atoi(string(rest))
		if err != nil || n < -1 || n > maxBulk {
			return Value{}, protoErr("bad bulk length %q", rest)
		}
		if n == -1 {
			return Value{}, nil
		}
		buf := make([]byte, n+2)
		if _, err := readFull(r, buf); err != nil {
			return Value{}, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Value{}, protoErr("bulk string not followed by CRLF")
		}
		return Value{Kind: kind, Str: buf[:n]}, nil
	case '*':
		n, err := strconv.Atoi(string(rest))
		if err != nil || n < -1 || n > maxArray {
			return Value{}, protoErr("bad array length %q", rest)
		}
		if n == -1 {
			return Value{}, nil
		}
		v := Value{Kind: kind, Array: make([]Value, 0, min(n, 1024))}
		for range n {
			e, err := readValue(r, depth+1)
			if err != nil {
				return Value{}, err
			}
			v.Array = append(v.Array, e)
		}
		return v, nil
	}
	return Value{}, protoErr("unknown type byte %q", kind)
}

func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, protoErr("line longer than %d bytes", r.Size())
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, protoErr("line not ended by CRLF")
	}
	return line[:len(line)-2], nil
}

func readFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// AppendCommand appends args as a RESP array of bulk strings.
func AppendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// Client is one connection to a Redis server. It is not safe for
// concurrent use.
type Client struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
	wbuf    []byte
}

// Dial connects to addr and authenticates when password is not empty.
func Dial(ctx context.Context, addr, password string, timeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), timeout: timeout}
	if password != "" {
		if _, err := c.Do("AUTH", password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return c, nil
}

// LocalAddr is the connection's local address, as the server shows it
// in SLOWLOG entries' client address.
func (c *Client) LocalAddr() string { return c.conn.LocalAddr().String() }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ServerError is an error reply from the server.
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return "redis: " + e.Msg }

// Do sends one command and reads its reply; an error reply is a
// *ServerError.
func (c *Client) Do(args ...string) (Value, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	c.wbuf = AppendCommand(c.wbuf[:0], args...)
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return Value{}, err
	}
	v, err := ReadValue(c.r)
	if err != nil {
		return Value{}, err
	}
	if v.Kind == '-' {
		return v, &ServerError{Msg: string(v.Str)}
	}
	return v, nil
}

// Entry is one SLOWLOG entry.
type Entry struct {
	ID         int64
	Time       time.Time
	Duration   time.Duration
	Args       []string
	Client     string // address, Redis ≥ 4.0
	ClientName string
}

// ParseEntries decodes a SLOWLOG GET reply.
func ParseEntries(v Value) ([]Entry, error) {
	if v.Kind != '*' {
		return nil, protoErr("SLOWLOG GET reply is not an array")
	}
	out := make([]Entry, 0, len(v.Array))
	for i, e := range v.Array {
		if e.Kind != '*' || len(e.Array) < 4 {
			return nil, protoErr("entry %d: not an array of at least 4 fields", i)
		}
		f := e.Array
		if f[0].Kind != ':' || f[1].Kind != ':' || f[2].Kind != ':' || f[3].Kind != '*' {
			return nil, protoErr("entry %d: want id, time, duration integers and an argument array", i)
		}
		if f[0].Int < 0 || f[2].Int < 0 {
			return nil, protoErr("entry %d: negative id or duration", i)
		}
		en := Entry{ID: f[0].Int, Time: time.Unix(f[1].Int, 0).UTC(), Duration: time.Duration(f[2].Int) * time.Microsecond}
		for j, a := range f[3].Array {
			if a.Kind != '$' && a.Kind != '+' {
				return nil, protoErr("entry %d: argument %d is not a string", i, j)
			}
			en.Args = append(en.Args, string(a.Str))
		}
		if len(f) >= 6 {
			en.Client, en.ClientName = string(f[4].Str), string(f[5].Str)
		}
		out = append(out, en)
	}
	return out, nil
}

// ParseInfoField returns a field of an INFO reply ("run_id").
func ParseInfoField(info []byte, field string) string {
	for _, line := range bytes.Split(info, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(k) == field {
			return string(v)
		}
	}
	return ""
}

// Tracker decides which entries are new. Its zero value has seen nothing.
type Tracker struct {
	RunID  string `json:"run_id"`
	LastID int64  `json:"last_id"` // -1 or absent: nothing seen yet
	Seen   bool   `json:"seen"`
}

// Result is what one poll brought.
type Result struct {
	New []Entry // oldest first
	// Restart is set when the server restarted since the last poll.
	Restart       bool
	RestartReason string
	PreviousID    int64 // the last id seen before the restart
	// Lost counts entries gone before they could be read: ids
	// FirstLost..LastLost. Overflow says the log was full
	// (slowlog-max-len); otherwise it was reset (SLOWLOG RESET).
	Lost                int64
	FirstLost, LastLost int64
	Overflow            bool
}

// Observe takes one poll: the server's run_id, the entries returned by
// SLOWLOG GET (any order) and slowlog-max-len (0 if unknown). It does not
// change the Tracker; call Commit with the Result once the new entries
// have been written.
func (t *Tracker) Observe(runID string, entries []Entry, maxLen int) Result {
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID < entries[j].ID })
	var res Result
	last := t.LastID
	seen := t.Seen
	if seen {
		switch {
		case runID != "" && t.RunID != "" && runID != t.RunID:
			res.Restart, res.RestartReason = true, fmt.Sprintf("run_id changed from %s to %s", t.RunID, runID)
		case len(entries) > 0 && entries[len(entries)-1].ID < last:
			res.Restart, res.RestartReason = true, fmt.Sprintf("slowlog ids went back from %d to %d", last, entries[len(entries)-1].ID)
		}
		if res.Restart {
			res.PreviousID = last
			seen = false
		}
	}
	for i, e := range entries {
		if !seen || e.ID > last {
			res.New = entries[i:]
			break
		}
	}
	if seen && len(res.New) > 0 && res.New[0].ID > last+1 {
		res.Lost = res.New[0].ID - last - 1
		res.FirstLost, res.LastLost = last+1, res.New[0].ID-1
		res.Overflow = maxLen > 0 && len(entries) >= maxLen
	}
	return res
}

// Commit advances the Tracker past a Result's entries.
func (t *Tracker) Commit(runID string, res Result) {
	if res.Restart || !t.Seen {
		t.LastID = -1
	}
	if runID != "" {
		t.RunID = runID
	}
	if n := len(res.New); n > 0 {
		t.LastID = res.New[n-1].ID
	}
	t.Seen = true
}
