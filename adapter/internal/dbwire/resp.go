// Package dbwire is the database-client plumbing shared by podkit's
// adapters: a small RESP2 client for Redis spoken directly over a
// net.Conn, and one text-result query interface over MySQL/MariaDB
// (go-sql-driver/mysql) and PostgreSQL (pgx), with target parsing that
// keeps passwords out of command lines (they come from files).
package dbwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits on what a RESP reply may claim, so that a broken or hostile peer
// cannot make the reader allocate without bound.
const (
	MaxBulkLen  = 64 << 20 // bytes in one bulk string
	MaxArrayLen = 1 << 20  // elements in one array
	MaxDepth    = 16       // nesting of arrays
	maxLineLen  = 64 << 10 // a simple string, error or integer line
)

// ErrProtocol is wrapped by every error caused by a reply that is not valid
// RESP (as opposed to an I/O error or a Redis error reply).
var ErrProtocol = errors.New("redis protocol error")

// RedisError is an error reply (-ERR ...) from the server.
type RedisError string

func (e RedisError) Error() string { return string(e) }

// Kind is the type of a RESP value.
type Kind byte

// RESP2 value kinds.
const (
	KindSimple  Kind = '+'
	KindError   Kind = '-'
	KindInteger Kind = ':'
	KindBulk    Kind = '$'
	KindArray   Kind = '*'
)

// Value is one RESP2 reply. Nil is set for a null bulk string or a null
// array.
type Value struct {
	Kind  Kind
	Str   string  // simple string, error text or bulk string
	Int   int64   // integer
	Array []Value // array elements
	Nil   bool
}

// Text returns the value as a string: the string itself, an integer in
// decimal, or an error for arrays, nulls and error replies.
func (v Value) Text() (string, error) {
	switch {
	case v.Kind == KindError:
		return "", RedisError(v.Str)
	case v.Nil:
		return "", errors.New("nil reply")
	case v.Kind == KindSimple || v.Kind == KindBulk:
		return v.Str, nil
	case v.Kind == KindInteger:
		return strconv.FormatInt(v.Int, 10), nil
	}
	return "", fmt.Errorf("%w: expected a string, got an array of %d", ErrProtocol, len(v.Array))
}

// Integer returns an integer reply's value.
func (v Value) Integer() (int64, error) {
	switch {
	case v.Kind == KindError:
		return 0, RedisError(v.Str)
	case v.Kind == KindInteger:
		return v.Int, nil
	}
	return 0, fmt.Errorf("%w: expected an integer reply, got %q", ErrProtocol, byte(v.Kind))
}

// ReadValue reads one RESP2 value from r.
func ReadValue(r *bufio.Reader) (Value, error) {
	return readValue(r, 0)
}

func readValue(r *bufio.Reader, depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, fmt.Errorf("%w: arrays nested deeper than %d", ErrProtocol, MaxDepth)
	}
	line, err := readLine(r)
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, fmt.Errorf("%w: empty line", ErrProtocol)
	}
	kind, rest := Kind(line[0]), line[1:]
	switch kind {
	case KindSimple, KindError:
		return Value{Kind: kind, Str: string(rest)}, nil
	case KindInteger:
		n, err := strconv.ParseInt(string(rest), 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: bad integer %q", ErrProtocol, rest)
		}
		return Value{Kind: kind, Int: n}, nil
	case KindBulk:
		n, err := strconv.ParseInt(string(rest), 10, 64)
		switch {
		case err != nil:
			return Value{}, fmt.Errorf("%w: bad bulk length %q", ErrProtocol, rest)
		case n == -1:
			return Value{Kind: kind, Nil: true}, nil
		case n < 0 || n > MaxBulkLen:
			return Value{}, fmt.Errorf("%w: bulk length %d out of range", ErrProtocol, n)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return Value{}, unexpectedEOF(err)
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Value{}, fmt.Errorf("%w: bulk string of %d bytes not followed by CRLF", ErrProtocol, n)
		}
		return Value{Kind: kind, Str: string(buf[:n])}, nil
	case KindArray:
		n, err := strconv.ParseInt(string(rest), 10, 64)
		switch {
		case err != nil:
			return Value{}, fmt.Errorf("%w: bad array length %q", ErrProtocol, rest)
		case n == -1:
			return Value{Kind: kind, Nil: true}, nil
		case n < 0 || n > MaxArrayLen:
			return Value{}, fmt.Errorf("%w: array length %d out of range", ErrProtocol, n)
		}
		arr := make([]Value, 0, min(n, 1024))
		for range n {
			v, err := readValue(r, depth+1)
			if err != nil {
				return Value{}, err
			}
			arr = append(arr, v)
		}
		return Value{Kind: kind, Array: arr}, nil
	}
	return Value{}, fmt.Errorf("%w: unknown reply type %q", ErrProtocol, line[0])
}

// readLine reads a CRLF-terminated line without the CRLF.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > maxLineLen {
				return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLineLen)
			}
			continue
		}
		if len(line) > 0 {
			return nil, unexpectedEOF(err)
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not terminated by CRLF", ErrProtocol)
	}
	return line[:len(line)-2], nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendCommand appends args as a RESP array of bulk strings.
func AppendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}
