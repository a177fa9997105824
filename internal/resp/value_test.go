package resp

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadValue(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Value
		err      error // nil: no error
	}{
		{"simple", "+OK\r\n", Value{Kind: KindSimple, Str: "OK"}, nil},
		{"error", "-ERR bad\r\n", Value{Kind: KindError, Str: "ERR bad"}, nil},
		{"int", ":-42\r\n", Value{Kind: KindInteger, Int: -42}, nil},
		{"bulk", "$5\r\nhello\r\n", Value{Kind: KindBulk, Str: "hello"}, nil},
		{"bulk with CRLF", "$4\r\na\r\nb\r\n", Value{Kind: KindBulk, Str: "a\r\nb"}, nil},
		{"empty bulk", "$0\r\n\r\n", Value{Kind: KindBulk, Str: ""}, nil},
		{"nil bulk", "$-1\r\n", Value{Kind: KindBulk, Nil: true}, nil},
		{"nil array", "*-1\r\n", Value{Kind: KindArray, Nil: true}, nil},
		{"empty array", "*0\r\n", Value{Kind: KindArray, Array: []Value{}}, nil},
		{"array", "*2\r\n:1\r\n$1\r\na\r\n", Value{Kind: KindArray, Array: []Value{{Kind: KindInteger, Int: 1}, {Kind: KindBulk, Str: "a"}}}, nil},
		{"nested", "*2\r\n*1\r\n+x\r\n$-1\r\n", Value{Kind: KindArray, Array: []Value{{Kind: KindArray, Array: []Value{{Kind: KindSimple, Str: "x"}}}, {Kind: KindBulk, Nil: true}}}, nil},
		{"bad type", "?x\r\n", Value{}, ErrProtocol},
		{"RESP3 type", "_\r\n", Value{}, ErrProtocol},
		{"bad int", ":x\r\n", Value{}, ErrProtocol},
		{"bad bulk length", "$x\r\n", Value{}, ErrProtocol},
		{"negative bulk length", "$-2\r\n", Value{}, ErrProtocol},
		{"negative array length", "*-2\r\n", Value{}, ErrProtocol},
		{"huge bulk", "$999999999999\r\n", Value{}, ErrTooLarge},
		{"huge array", "*2000000\r\n", Value{}, ErrTooLarge},
		{"bulk without CRLF", "$1\r\nabc\r\n", Value{}, ErrProtocol},
		{"truncated bulk without CRLF", "$1\r\nab", Value{}, io.ErrUnexpectedEOF},
		{"truncated bulk", "$5\r\nab\r\n", Value{}, io.ErrUnexpectedEOF},
		{"truncated array", "*2\r\n:1\r\n", Value{}, io.ErrUnexpectedEOF},
		{"LF only", "+OK\n", Value{}, io.ErrUnexpectedEOF},
		{"bare LF inside a line", "+O\nK\r\n", Value{}, ErrProtocol},
		{"empty", "", Value{}, io.EOF},
		{"deep", strings.Repeat("*1\r\n", MaxDepth+2) + ":1\r\n", Value{}, ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"whole", "onebyte"} {
				var rd io.Reader = strings.NewReader(tc.in)
				if name == "onebyte" {
					rd = iotest.OneByteReader(rd)
				}
				got, err := NewReader(rd, 0, DefaultLimits).ReadValue()
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("%s: got %+v, %v; want %v", name, got, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !equal(got, tc.want) {
					t.Fatalf("%s: got %+v, want %+v", name, got, tc.want)
				}
			}
		})
	}
}

func TestParseValueTrailing(t *testing.T) {
	if _, err := ParseValue([]byte("+OK\r\n+OK\r\n")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("two replies: %v", err)
	}
	if _, err := ParseValue([]byte("*3\r\n:1\r\n")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestValueText(t *testing.T) {
	for _, tc := range []struct {
		v    Value
		want string
		err  bool
	}{
		{Value{Kind: KindSimple, Str: "PONG"}, "PONG", false},
		{Value{Kind: KindBulk, Str: "x"}, "x", false},
		{Value{Kind: KindInteger, Int: 7}, "7", false},
		{Value{Kind: KindBulk, Nil: true}, "", true},
		{Value{Kind: KindArray}, "", true},
	} {
		got, err := tc.v.Text()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%+v.Text() = %q, %v", tc.v, got, err)
		}
	}
	var e Error
	if _, err := (Value{Kind: KindError, Str: "ERR x"}).Text(); !errors.As(err, &e) || e != "ERR x" {
		t.Errorf("error reply's Text: %v", err)
	}
	if n, err := (Value{Kind: KindInteger, Int: 3}).Integer(); n != 3 || err != nil {
		t.Errorf("Integer = %d, %v", n, err)
	}
	if _, err := (Value{Kind: KindError, Str: "ERR y"}).Integer(); !errors.As(err, &e) {
		t.Errorf("error reply's Integer: %v", err)
	}
	if _, err := (Value{Kind: KindBulk, Str: "3"}).Integer(); !errors.Is(err, ErrProtocol) {
		t.Errorf("bulk's Integer: %v", err)
	}
}

func equal(a, b Value) bool {
	if a.Kind != b.Kind || a.Str != b.Str || a.Int != b.Int || a.Nil != b.Nil || len(a.Array) != len(b.Array) {
		return false
	}
	for i := range a.Array {
		if !equal(a.Array[i], b.Array[i]) {
			return false
		}
	}
	return true
}

// appendValue encodes v as the server would have sent it.
func appendValue(b []byte, v Value) []byte {
	switch {
	case v.Nil && v.Kind == KindArray:
		return append(b, "*-1\r\n"...)
	case v.Nil:
		return AppendNull(b)
	}
	switch v.Kind {
	case KindSimple:
		return AppendSimple(b, v.Str)
	case KindError:
		return AppendError(b, v.Str)
	case KindInteger:
		return AppendInt(b, v.Int)
	case KindBulk:
		return AppendBulkString(b, v.Str)
	}
	b = AppendArray(b, len(v.Array))
	for _, e := range v.Array {
		b = appendValue(b, e)
	}
	return b
}

// FuzzReadValue: whatever the reader accepts is exactly one reply that
// ParseValue decodes the same, and that encodes back to a reply no longer
// than the input (equal but for how numbers were written) which decodes
// to the same value: decoding loses nothing and invents nothing.
func FuzzReadValue(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "$5\r\nhello\r\n", "*2\r\n:1\r\n$-1\r\n", "-ERR x\r\n", "*-1\r\n", "$-2\r\n",
		"*1\r\n*6\r\n:14\r\n:1309448221\r\n:15\r\n*1\r\n$4\r\nping\r\n$3\r\na:b\r\n$0\r\n\r\n",
		":-0\r\n", "%1\r\n+a\r\n+b\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(strings.NewReader(string(b)), 0, DefaultLimits)
		v, err := r.ReadValue()
		if err != nil {
			return
		}
		n := len(b) - r.Buffered()
		again, err := ParseValue(b[:n])
		if err != nil || !equal(v, again) {
			t.Fatalf("ParseValue(%q) = %+v, %v; ReadValue read %+v", b[:n], again, err, v)
		}
		enc := appendValue(nil, v)
		if len(enc) > n {
			t.Fatalf("%q decoded to %+v, which encodes longer: %q", b[:n], v, enc)
		}
		if back, err := ParseValue(enc); err != nil || !equal(v, back) {
			t.Fatalf("%+v encodes as %q, which decodes to %+v, %v", v, enc, back, err)
		}
	})
}
