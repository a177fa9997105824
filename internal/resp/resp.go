// Package resp reads and writes the Redis serialization protocol (RESP2,
// and the RESP3 reply types) without allocating per frame: commands and
// replies are returned as byte slices into the reader's buffer, valid until
// the next read.
package resp

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/podkit/podkit/internal/frame"
)

// ErrProtocol is wrapped by every error about malformed input.
var ErrProtocol = errors.New("protocol error")

// ErrTooLarge is wrapped by the error for a frame over the reader's limits.
var ErrTooLarge = errors.New("frame too large")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, a...)...)
}

// Limits bound what a Reader accepts.
type Limits struct {
	MaxBulk   int // largest bulk string, in bytes
	MaxArgs   int // most elements in one array
	MaxInline int // longest inline command or simple line
}

// DefaultLimits are Redis' own limits, except MaxBulk (Redis: 512 MiB).
var DefaultLimits = Limits{MaxBulk: 64 << 20, MaxArgs: 1 << 20, MaxInline: 64 << 10}

// Reader reads RESP frames from an io.Reader through its own buffer.
type Reader struct {
	in     frame.Reader
	limits Limits
	args   [][]byte
}

// NewReader returns a Reader with an initial buffer of size bytes.
func NewReader(rd io.Reader, size int, limits Limits) *Reader {
	if limits.MaxBulk <= 0 {
		limits.MaxBulk = DefaultLimits.MaxBulk
	}
	if limits.MaxArgs <= 0 {
		limits.MaxArgs = DefaultLimits.MaxArgs
	}
	if limits.MaxInline <= 0 {
		limits.MaxInline = DefaultLimits.MaxInline
	}
	r := &Reader{limits: limits}
	r.in.Init(rd, size)
	return r
}

// Reset makes r read from rd, dropping anything buffered.
func (r *Reader) Reset(rd io.Reader) { r.in.Reset(rd) }

// Buffered is the number of bytes read from the connection and not yet
// returned as a frame.
func (r *Reader) Buffered() int { return r.in.Buffered() }

// ReadCommand reads one client command, an array of bulk strings or an
// inline command, and returns its arguments and its raw bytes. Both alias
// the reader's buffer and are valid until the next call. An empty inline
// line is skipped.
func (r *Reader) ReadCommand() (args [][]byte, raw []byte, err error) {
	for {
		need := 1
		if r.in.Buffered() > 0 {
			var n int
			n, need, args, err = r.parseCommand(r.in.Bytes())
			if err != nil {
				return nil, nil, err
			}
			if n > 0 {
				raw = r.in.Next(n)
				if len(args) == 0 {
					continue // empty inline line
				}
				return args, raw, nil
			}
		}
		if err := r.in.More(need); err != nil {
			return nil, nil, err
		}
	}
}

// parseCommand parses a command at the start of b. It returns the frame
// length n, or n == 0 and how many more bytes are needed at least.
func (r *Reader) parseCommand(b []byte) (n, need int, args [][]byte, err error) {
	args = r.args[:0]
	defer func() { r.args = args[:0] }()
	if b[0] != '*' {
		return r.parseInline(b, args)
	}
	line, ok := lineAt(b, 0)
	if !ok {
		if len(b) > r.limits.MaxInline {
			return 0, 0, nil, protoErr("array header too long")
		}
		return 0, 1, args, nil
	}
	count, err := parseInt(b[1:line])
	if err != nil {
		return 0, 0, nil, protoErr("invalid multibulk length")
	}
	if count > int64(r.limits.MaxArgs) {
		return 0, 0, nil, fmt.Errorf("%w: %d arguments, the limit is %d", ErrTooLarge, count, r.limits.MaxArgs)
	}
	pos := line + 2
	if count <= 0 {
		return pos, 0, args, nil
	}
	for i := int64(0); i < count; i++ {
		if pos >= len(b) {
			return 0, 1, args, nil
		}
		if b[pos] != '$' {
			return 0, 0, nil, protoErr("expected '$', got '%s'", printable(b[pos]))
		}
		end, ok := lineAt(b, pos)
		if !ok {
			if len(b)-pos > 32 {
				return 0, 0, nil, protoErr("bulk length too long")
			}
			return 0, 1, args, nil
		}
		l, err := parseInt(b[pos+1 : end])
		if err != nil || l < 0 {
			return 0, 0, nil, protoErr("invalid bulk length")
		}
		if l > int64(r.limits.MaxBulk) {
			return 0, 0, nil, fmt.Errorf("%w: bulk string of %d bytes, the limit is %d", ErrTooLarge, l, r.limits.MaxBulk)
		}
		start := end + 2
		stop := start + int(l)
		if stop+2 > len(b) {
			return 0, stop + 2 - len(b), args, nil
		}
		if b[stop] != '\r' || b[stop+1] != '\n' {
			return 0, 0, nil, protoErr("bulk string not terminated by CRLF")
		}
		args = append(args, b[start:stop:stop])
		pos = stop + 2
	}
	return pos, 0, args, nil
}

func (r *Reader) parseInline(b []byte, args [][]byte) (n, need int, _ [][]byte, err error) {
	i := 0
	for i < len(b) && b[i] != '\n' {
		i++
	}
	if i == len(b) {
		if len(b) > r.limits.MaxInline {
			return 0, 0, nil, fmt.Errorf("%w: inline command longer than %d bytes", ErrTooLarge, r.limits.MaxInline)
		}
		return 0, 1, args, nil
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	for j := 0; j < len(line); {
		for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
			j++
		}
		k := j
		for k < len(line) && line[k] != ' ' && line[k] != '\t' {
			k++
		}
		if k > j {
			args = append(args, line[j:k:k])
		}
		j = k
	}
	return i + 1, 0, args, nil
}

// ReadReply reads one complete reply of any type, nested arrays, maps and
// sets included, and returns its raw bytes (valid until the next call).
func (r *Reader) ReadReply() ([]byte, error) {
	for {
		need := 1
		if r.in.Buffered() > 0 {
			var n int
			var err error
			n, need, err = r.scanValue(r.in.Bytes(), 0, 0)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				return r.in.Next(n), nil
			}
		}
		if err := r.in.More(need); err != nil {
			return nil, err
		}
	}
}

// scanValue returns the end of the value starting at b[pos:], or 0 and
// the number of bytes still needed at least.
func (r *Reader) scanValue(b []byte, pos, depth int) (end, need int, err error) {
	if depth > 64 {
		return 0, 0, protoErr("replies nested deeper than 64")
	}
	if pos >= len(b) {
		return 0, 1, nil
	}
	line, ok := lineAt(b, pos)
	if !ok {
		if len(b)-pos > r.limits.MaxInline {
			return 0, 0, fmt.Errorf("%w: reply line longer than %d bytes", ErrTooLarge, r.limits.MaxInline)
		}
		return 0, 1, nil
	}
	next := line + 2
	switch b[pos] {
	case '+', '-', ':', '_', ',', '#', '(':
		return next, 0, nil
	case '$', '!', '=':
		l, err := parseInt(b[pos+1 : line])
		if err != nil {
			return 0, 0, protoErr("invalid bulk length")
		}
		if l < 0 {
			return next, 0, nil
		}
		if l > int64(r.limits.MaxBulk) {
			return 0, 0, fmt.Errorf("%w: bulk reply of %d bytes, the limit is %d", ErrTooLarge, l, r.limits.MaxBulk)
		}
		stop := next + int(l)
		if stop+2 > len(b) {
			return 0, stop + 2 - len(b), nil
		}
		if b[stop] != '\r' || b[stop+1] != '\n' {
			return 0, 0, protoErr("bulk reply not terminated by CRLF")
		}
		return stop + 2, 0, nil
	case '*', '~', '>', '%', '|':
		l, err := parseInt(b[pos+1 : line])
		if err != nil {
			return 0, 0, protoErr("invalid array length")
		}
		if b[pos] == '%' || b[pos] == '|' {
			l *= 2
		}
		if l > int64(r.limits.MaxArgs) {
			return 0, 0, fmt.Errorf("%w: %d elements, the limit is %d", ErrTooLarge, l, r.limits.MaxArgs)
		}
		for i := int64(0); i < l; i++ {
			e, need, err := r.scanValue(b, next, depth+1)
			if e == 0 {
				return 0, need, err
			}
			next = e
		}
		if b[pos] == '|' { // attribute: the value it annotates follows
			return r.scanValue(b, next, depth+1)
		}
		return next, 0, nil
	}
	return 0, 0, protoErr("unknown reply type '%s'", printable(b[pos]))
}

// lineAt finds the CRLF ending the line that starts at pos and returns the
// index of its '\r'.
func lineAt(b []byte, pos int) (int, bool) {
	for i := pos; i+1 < len(b); i++ {
		if b[i] == '\r' {
			if b[i+1] == '\n' {
				return i, true
			}
		}
	}
	return 0, false
}

// parseInt parses a decimal integer (with an optional minus sign).
func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 19 {
		return 0, errors.New("bad integer")
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, errors.New("bad integer")
		}
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("bad integer")
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// ParseInt parses the integer reply ":N\r\n".
func ParseInt(raw []byte) (int64, bool) {
	if len(raw) < 4 || raw[0] != ':' {
		return 0, false
	}
	n, err := parseInt(raw[1 : len(raw)-2])
	return n, err == nil
}

// ArrayElems splits a complete array reply into the raw bytes of its
// elements, appending to elems. ok is false if raw is not an array (an
// error reply, for example) or is malformed.
func ArrayElems(raw []byte, elems [][]byte) (_ [][]byte, ok bool) {
	if len(raw) == 0 || raw[0] != '*' {
		return elems, false
	}
	line, found := lineAt(raw, 0)
	if !found {
		return elems, false
	}
	n, err := parseInt(raw[1:line])
	if err != nil {
		return elems, false
	}
	sc := Reader{limits: Limits{MaxBulk: 1<<31 - 1, MaxArgs: 1<<31 - 1, MaxInline: 1<<31 - 1}}
	pos := line + 2
	for i := int64(0); i < n; i++ {
		end, _, err := sc.scanValue(raw, pos, 1)
		if err != nil || end == 0 {
			return elems, false
		}
		elems = append(elems, raw[pos:end])
		pos = end
	}
	return elems, true
}

func printable(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return string(rune(c))
	}
	return fmt.Sprintf("\\x%02x", c)
}

// AppendError appends the error reply "-msg\r\n"; CR and LF in msg are
// replaced by spaces.
func AppendError(b []byte, msg string) []byte {
	b = append(b, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\r', '\n')
}

// AppendSimple appends the status reply "+s\r\n".
func AppendSimple(b []byte, s string) []byte {
	b = append(b, '+')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendInt appends the integer reply ":n\r\n".
func AppendInt(b []byte, n int64) []byte {
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// AppendBulk appends a bulk string.
func AppendBulk(b, s []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBulkString appends a bulk string.
func AppendBulkString(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendNull appends the RESP2 null bulk string.
func AppendNull(b []byte) []byte { return append(b, "$-1\r\n"...) }

// AppendArray appends an array header of n elements.
func AppendArray(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// AppendCommand appends a command as an array of bulk strings.
func AppendCommand(b []byte, args ...[]byte) []byte {
	b = AppendArray(b, len(args))
	for _, a := range args {
		b = AppendBulk(b, a)
	}
	return b
}

// TryCommand is ReadCommand without reading from the connection: it
// returns ok false when no complete command is buffered. Earlier
// commands' slices stay valid (the buffer is not moved).
func (r *Reader) TryCommand() (args [][]byte, raw []byte, ok bool, err error) {
	for r.in.Buffered() > 0 {
		n, need, args, err := r.parseCommand(r.in.Bytes())
		if err != nil {
			return nil, nil, false, err
		}
		if n == 0 {
			r.in.Want(need)
			return nil, nil, false, nil
		}
		raw = r.in.Next(n)
		if len(args) > 0 {
			return args, raw, true, nil
		}
	}
	return nil, nil, false, nil
}

// TryReply is ReadReply without reading from the connection: it returns
// ok false when no complete reply is buffered.
func (r *Reader) TryReply() (raw []byte, ok bool, err error) {
	if r.in.Buffered() == 0 {
		r.in.Want(1)
		return nil, false, nil
	}
	n, need, err := r.scanValue(r.in.Bytes(), 0, 0)
	if err != nil || n == 0 {
		r.in.Want(need)
		return nil, false, err
	}
	return r.in.Next(n), true, nil
}

// Fill reads from the connection once, into room for at least the bytes
// the last Try call found missing; it may move the buffer, so slices from
// earlier calls are no longer valid. It reports how many bytes it read
// and whether they filled the free space (more may be waiting). Unlike
// the Read methods it does not keep the error: a non-blocking reader's
// "try again" is just returned.
func (r *Reader) Fill() (n int, full bool, err error) { return r.in.Fill() }

// TryReplies is TryReply for n replies in a row, returned as one slice.
func (r *Reader) TryReplies(n int) (raw []byte, ok bool, err error) {
	b := r.in.Bytes()
	pos := 0
	for range n {
		end, need, err := r.scanValue(b, pos, 0)
		if err != nil || end == 0 {
			r.in.Want(need)
			return nil, false, err
		}
		pos = end
	}
	return r.in.Next(pos), true, nil
}

// LastValue returns the last complete value of raw, a run of replies
// (raw itself if it holds no complete value).
func LastValue(raw []byte) []byte {
	r := Reader{limits: Limits{MaxBulk: math.MaxInt, MaxArgs: math.MaxInt, MaxInline: math.MaxInt}}
	last, pos := 0, 0
	for pos < len(raw) {
		end, _, err := r.scanValue(raw, pos, 0)
		if err != nil || end == 0 {
			break
		}
		last, pos = pos, end
	}
	return raw[last:]
}
