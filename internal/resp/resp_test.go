package resp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/podkit/podkit/internal/testdeps"
)

func TestReadCommand(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]string
		err  error
	}{
		{"array", "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n", [][]string{{"GET", "foo"}}, io.EOF},
		{"pipelined", "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [][]string{{"PING"}, {"ECHO", ""}}, io.EOF},
		{"inline", "SET k  v\r\nGET k\n", [][]string{{"SET", "k", "v"}, {"GET", "k"}}, io.EOF},
		{"empty inline skipped", "\r\nPING\r\n", [][]string{{"PING"}}, io.EOF},
		{"binary", "*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", [][]string{{"GET", "a\r\nb"}}, io.EOF},
		{"zero array skipped", "*0\r\n*1\r\n$4\r\nPING\r\n", [][]string{{"PING"}}, io.EOF},
		{"bad length", "*x\r\n", nil, ErrProtocol},
		{"not bulk", "*1\r\n:1\r\n", nil, ErrProtocol},
		{"bad terminator", "*1\r\n$1\r\nab\r\n", nil, ErrProtocol},
		{"negative bulk", "*1\r\n$-1\r\n", nil, ErrProtocol},
		{"too many args", "*2000000\r\n", nil, ErrTooLarge},
		{"bulk too large", "*1\r\n$999999999\r\n", nil, ErrTooLarge},
		{"truncated", "*2\r\n$3\r\nGET\r\n$3\r\nfo", nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"whole", "onebyte"} {
				var rd io.Reader = strings.NewReader(tt.in)
				if name == "onebyte" {
					rd = iotest.OneByteReader(rd)
				}
				r := NewReader(rd, 16, DefaultLimits)
				var got [][]string
				var err error
				for {
					var args [][]byte
					args, _, err = r.ReadCommand()
					if err != nil {
						break
					}
					var s []string
					for _, a := range args {
						s = append(s, string(a))
					}
					got = append(got, s)
				}
				if !errors.Is(err, tt.err) {
					t.Fatalf("%s: err = %v, want %v", name, err, tt.err)
				}
				if tt.want != nil && strings.Join(flat(got), "|") != strings.Join(flat(tt.want), "|") {
					t.Fatalf("%s: got %q, want %q", name, got, tt.want)
				}
			}
		})
	}
}

func flat(x [][]string) []string {
	var out []string
	for _, s := range x {
		out = append(out, strings.Join(s, ","))
	}
	return out
}

func TestReadReply(t *testing.T) {
	replies := []string{
		"+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nbar\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", "%1\r\n+k\r\n+v\r\n", "_\r\n", ",1.5\r\n", "#t\r\n",
		"|1\r\n+a\r\n+b\r\n:1\r\n", ">2\r\n+message\r\n$1\r\nx\r\n",
	}
	in := strings.Join(replies, "")
	for _, name := range []string{"whole", "onebyte"} {
		var rd io.Reader = strings.NewReader(in)
		if name == "onebyte" {
			rd = iotest.OneByteReader(rd)
		}
		r := NewReader(rd, 8, DefaultLimits)
		for i, want := range replies {
			got, err := r.ReadReply()
			if err != nil {
				t.Fatalf("%s: reply %d: %v", name, i, err)
			}
			if string(got) != want {
				t.Fatalf("%s: reply %d = %q, want %q", name, i, got, want)
			}
		}
		if _, err := r.ReadReply(); err != io.EOF {
			t.Fatalf("%s: at end: %v, want EOF", name, err)
		}
	}
	r := NewReader(strings.NewReader("?x\r\n"), 8, DefaultLimits)
	if _, err := r.ReadReply(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestArrayElems(t *testing.T) {
	elems, ok := ArrayElems([]byte("*3\r\n$1\r\na\r\n$-1\r\n:5\r\n"), nil)
	if !ok || len(elems) != 3 || string(elems[0]) != "$1\r\na\r\n" || string(elems[1]) != "$-1\r\n" || string(elems[2]) != ":5\r\n" {
		t.Fatalf("got %q %v", elems, ok)
	}
	if _, ok := ArrayElems([]byte("-ERR x\r\n"), nil); ok {
		t.Fatal("error reply split as an array")
	}
	if n, ok := ParseInt([]byte(":-42\r\n")); !ok || n != -42 {
		t.Fatalf("ParseInt = %d %v", n, ok)
	}
}

func TestAppend(t *testing.T) {
	var b []byte
	b = AppendCommand(b, []byte("SET"), []byte("k"), []byte(""))
	b = AppendError(b, "ERR bad\r\nthing")
	b = AppendInt(b, -3)
	b = AppendNull(b)
	b = AppendSimple(b, "OK")
	b = AppendBulkString(b, "x")
	want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n-ERR bad  thing\r\n:-3\r\n$-1\r\n+OK\r\n$1\r\nx\r\n"
	if string(b) != want {
		t.Fatalf("got %q", b)
	}
}

// FuzzReadCommand checks that no input panics the command reader, and that
// every command it returns survives a round trip through AppendCommand.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		// Traffic captured from redis-benchmark and redis-cli.
		"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n",
		"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n",
		"*1\r\n$7\r\nCOMMAND\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n",
		"*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n",
		"PING\r\n", "SET a b\n", "*1\r\n$-1\r\n", "*-1\r\n", "$3\r\nfoo\r\n", "*2\r\n$3\r\nGET",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 16, Limits{MaxBulk: 1 << 16, MaxArgs: 1 << 10, MaxInline: 1 << 12})
		for range 1000 {
			args, raw, err := r.ReadCommand()
			if err != nil {
				return
			}
			if len(raw) == 0 || len(args) == 0 {
				t.Fatalf("empty command without error")
			}
			enc := AppendCommand(nil, args...)
			r2 := NewReader(bytes.NewReader(enc), 16, DefaultLimits)
			args2, _, err := r2.ReadCommand()
			if err != nil || len(args2) != len(args) {
				t.Fatalf("round trip of %q: %v", enc, err)
			}
			for i := range args {
				if !bytes.Equal(args[i], args2[i]) {
					t.Fatalf("round trip: arg %d %q != %q", i, args[i], args2[i])
				}
			}
		}
	})
}

// FuzzReadReply checks that no input panics the reply reader and that a
// reply it returns scans again to the same length.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "$3\r\nbar\r\n", "*2\r\n$1\r\na\r\n$-1\r\n", "-ERR unknown command 'x'\r\n", ":1\r\n",
		"%1\r\n+a\r\n:1\r\n", "*1\r\n*1\r\n*1\r\n:1\r\n", "$5\r\nab",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 16, Limits{MaxBulk: 1 << 16, MaxArgs: 1 << 10, MaxInline: 1 << 12})
		for range 1000 {
			raw, err := r.ReadReply()
			if err != nil {
				return
			}
			again, err := NewReader(bytes.NewReader(raw), 16, DefaultLimits).ReadReply()
			if err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("reply %q rescanned as %q, %v", raw, again, err)
			}
			if raw[0] == '*' {
				if _, ok := ArrayElems(raw, nil); !ok {
					t.Fatalf("ArrayElems failed on %q", raw)
				}
			}
		}
	})
}

// FuzzTry checks that the event-loop reading (Fill, then Try until it
// finds nothing) returns the same commands and replies as the blocking
// Read methods, whatever the input and however it is split.
func FuzzTry(f *testing.F) {
	for _, s := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nxxx\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"+OK\r\n+QUEUED\r\n*2\r\n:1\r\n$1\r\na\r\n", "PING\r\n\r\nECHO a\r\n", "$5\r\nab",
	} {
		f.Add([]byte(s), uint8(3), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8, replies bool) {
		lim := Limits{MaxBulk: 1 << 16, MaxArgs: 1 << 10, MaxInline: 1 << 12}
		rd := NewReader(bytes.NewReader(in), 16, lim)
		tr := NewReader(&testdeps.Chunks{In: in, Step: int(step%64) + 1}, 16, lim)
		want := testdeps.TryMatchesRead(t,
			func() ([]byte, error) {
				if replies {
					return rd.ReadReply()
				}
				_, raw, err := rd.ReadCommand()
				return raw, err
			},
			func() ([]byte, bool, error) {
				if replies {
					return tr.TryReply()
				}
				_, raw, ok, err := tr.TryCommand()
				return raw, ok, err
			},
			func() error { _, _, err := tr.Fill(); return err })
		if replies && len(want) > 0 {
			all := bytes.Join(want, nil)
			if last := LastValue(all); !bytes.Equal(last, want[len(want)-1]) {
				t.Fatalf("LastValue(%q) = %q", all, last)
			}
			two, ok, err := NewReader(bytes.NewReader(nil), 16, lim).tryRepliesFrom(all, len(want))
			if err != nil || !ok || !bytes.Equal(two, all) {
				t.Fatalf("TryReplies(%d) of %q: %q %v %v", len(want), all, two, ok, err)
			}
		}
	})
}

// tryRepliesFrom runs TryReplies(n) over b as buffered input.
func (r *Reader) tryRepliesFrom(b []byte, n int) ([]byte, bool, error) {
	r.Reset(bytes.NewReader(b))
	for r.Buffered() < len(b) {
		if _, _, err := r.Fill(); err != nil {
			return nil, false, err
		}
	}
	return r.TryReplies(n)
}

// BenchmarkTryCommand is the shard's client path: take the buffered
// commands, then read once more.
func BenchmarkTryCommand(b *testing.B) {
	var chunk []byte
	for range 16 {
		chunk = AppendCommand(chunk, []byte("GET"), []byte("key:000123"))
	}
	rd := NewReader(&testdeps.Repeat{Chunk: chunk}, 16<<10, DefaultLimits)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		for {
			_, _, ok, err := rd.TryCommand()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
		if _, _, err := rd.Fill(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTryReply is the shard's server path: take the buffered
// replies, then read once more.
func BenchmarkTryReply(b *testing.B) {
	var chunk []byte
	for range 16 {
		chunk = append(chunk, "$10\r\nvalue:0001\r\n"...)
	}
	rd := NewReader(&testdeps.Repeat{Chunk: chunk}, 16<<10, DefaultLimits)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		for {
			_, ok, err := rd.TryReply()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
		if _, _, err := rd.Fill(); err != nil {
			b.Fatal(err)
		}
	}
}
