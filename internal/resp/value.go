package resp

// Value, ReadValue and Client are for clients (the adapters, SLOWLOG): a
// Value is a copy of what was decoded. The shard's data path uses the
// Reader's zero-copy ReadCommand and ReadReply instead.

import (
	"errors"
	"fmt"
	"strconv"
)

// Kind is the type of a decoded RESP2 value.
type Kind byte

// RESP2 value kinds, named by their type byte.
const (
	KindSimple  Kind = '+'
	KindError   Kind = '-'
	KindInteger Kind = ':'
	KindBulk    Kind = '$'
	KindArray   Kind = '*'
)

// MaxDepth is how deeply arrays may nest in a reply the Reader accepts.
const MaxDepth = 64

// Error is an error reply (-ERR ...) from the server.
type Error string

func (e Error) Error() string { return string(e) }

// Value is one decoded RESP2 reply: a copy, which stays valid after the
// next read. Nil is set for a null bulk string or a null array.
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
		return "", Error(v.Str)
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
	switch v.Kind {
	case KindError:
		return 0, Error(v.Str)
	case KindInteger:
		return v.Int, nil
	}
	return 0, fmt.Errorf("%w: expected an integer reply, got %q", ErrProtocol, byte(v.Kind))
}

// ReadValue reads one complete reply, within the Reader's limits, and
// decodes it. A reply of a RESP3-only type is a protocol error: podkit's
// clients speak RESP2 (they never send HELLO 3).
func (r *Reader) ReadValue() (Value, error) {
	raw, err := r.ReadReply()
	if err != nil {
		return Value{}, err
	}
	return ParseValue(raw)
}

// ParseValue decodes raw, exactly one RESP2 reply (as ReadReply returns).
func ParseValue(raw []byte) (Value, error) {
	v, n, err := parseValue(raw, 0, 0)
	if err != nil {
		return Value{}, err
	}
	if n != len(raw) {
		return Value{}, protoErr("%d bytes after the reply", len(raw)-n)
	}
	return v, nil
}

// parseValue decodes the value at b[pos:] and returns where it ends.
func parseValue(b []byte, pos, depth int) (Value, int, error) {
	if depth > MaxDepth {
		return Value{}, 0, protoErr("replies nested deeper than %d", MaxDepth)
	}
	if pos >= len(b) {
		return Value{}, 0, protoErr("truncated reply")
	}
	line, ok := lineAt(b, pos)
	if !ok {
		return Value{}, 0, protoErr("line not terminated by CRLF")
	}
	kind, rest, next := Kind(b[pos]), b[pos+1:line], line+2
	switch kind {
	case KindSimple, KindError:
		for _, c := range rest {
			if c == '\r' || c == '\n' {
				return Value{}, 0, protoErr("CR or LF inside a %q line", byte(kind))
			}
		}
		return Value{Kind: kind, Str: string(rest)}, next, nil
	case KindInteger:
		n, err := parseInt(rest)
		if err != nil {
			return Value{}, 0, protoErr("bad integer %q", clipBytes(rest))
		}
		return Value{Kind: kind, Int: n}, next, nil
	case KindBulk:
		n, err := parseInt(rest)
		switch {
		case err != nil || n < -1:
			return Value{}, 0, protoErr("bad bulk length %q", clipBytes(rest))
		case n == -1:
			return Value{Kind: kind, Nil: true}, next, nil
		case n > int64(len(b)-next-2):
			return Value{}, 0, protoErr("truncated bulk string of %d bytes", n)
		}
		stop := next + int(n)
		if b[stop] != '\r' || b[stop+1] != '\n' {
			return Value{}, 0, protoErr("bulk string of %d bytes not followed by CRLF", n)
		}
		return Value{Kind: kind, Str: string(b[next:stop])}, stop + 2, nil
	case KindArray:
		n, err := parseInt(rest)
		switch {
		case err != nil || n < -1:
			return Value{}, 0, protoErr("bad array length %q", clipBytes(rest))
		case n == -1:
			return Value{Kind: kind, Nil: true}, next, nil
		case n > int64(len(b)-next)/3: // each element is at least 3 bytes
			return Value{}, 0, protoErr("truncated array of %d elements", n)
		}
		arr := make([]Value, 0, n)
		for range n {
			v, end, err := parseValue(b, next, depth+1)
			if err != nil {
				return Value{}, 0, err
			}
			arr = append(arr, v)
			next = end
		}
		return Value{Kind: kind, Array: arr}, next, nil
	}
	return Value{}, 0, protoErr("unknown or RESP3 reply type '%s'", printable(b[pos]))
}

func clipBytes(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
