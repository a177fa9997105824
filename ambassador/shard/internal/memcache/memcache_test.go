package memcache

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/podkit/podkit/internal/testdeps"
)

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kind    Kind
		keys    string
		data    string
		noreply bool
		quiet   bool
		err     error
	}{
		{"get", "get a b c\r\n", KindGet, "a,b,c", "", false, false, nil},
		{"gets", "gets a\r\n", KindGet, "a", "", false, false, nil},
		{"gat", "gat 10 a b\r\n", KindGet, "a,b", "", false, false, nil},
		{"get no key", "get\r\n", 0, "", "", false, false, ErrBadLine},
		{"set", "set k 1 0 3\r\nabc\r\n", KindStore, "k", "abc", false, false, nil},
		{"set noreply", "set k 1 0 3 noreply\r\nabc\r\n", KindStore, "k", "abc", true, false, nil},
		{"cas", "cas k 0 0 1 99\r\nx\r\n", KindStore, "k", "x", false, false, nil},
		{"set binary", "set k 0 0 4\r\na\r\nb\r\n", KindStore, "k", "a\r\nb", false, false, nil},
		{"set bad chunk", "set k 0 0 1\r\nxyz\r\n", 0, "", "", false, false, ErrBadData},
		{"set bad line", "set k x 0 1\r\n", 0, "", "", false, false, ErrBadLine},
		{"set too large", "set k 0 0 9999999\r\n", 0, "", "", false, false, ErrTooLarge},
		{"delete", "delete k\r\n", KindKey, "k", "", false, false, nil},
		{"delete noreply", "delete k noreply\r\n", KindKey, "k", "", true, false, nil},
		{"delete hold", "delete k 0\r\n", KindKey, "k", "", false, false, nil},
		{"incr", "incr k 5\n", KindKey, "k", "", false, false, nil},
		{"touch", "touch k 10 noreply\r\n", KindKey, "k", "", true, false, nil},
		{"mg", "mg k v t q\r\n", KindMeta, "k", "", false, true, nil},
		{"ms", "ms k 2 T0\r\nhi\r\n", KindMeta, "k", "hi", false, false, nil},
		{"md", "md k q\r\n", KindMeta, "k", "", false, true, nil},
		{"ma", "ma k N0 J13\r\n", KindMeta, "k", "", false, false, nil},
		{"mn", "mn\r\n", KindMetaNoop, "", "", false, false, nil},
		{"version", "version\r\n", KindLocal, "", "", false, false, nil},
		{"stats", "stats\r\n", KindUnsupported, "", "", false, false, nil},
		{"unknown", "frob k\r\n", 0, "", "", false, false, ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "onebyte"} {
				var rd io.Reader = strings.NewReader(tt.in)
				if mode == "onebyte" {
					rd = iotest.OneByteReader(rd)
				}
				r := NewReader(rd, 8, DefaultLimits)
				req, err := r.ReadRequest()
				if !errors.Is(err, tt.err) {
					t.Fatalf("%s: err = %v, want %v", mode, err, tt.err)
				}
				if err != nil {
					continue
				}
				var keys []string
				for _, k := range req.Keys {
					keys = append(keys, string(k))
				}
				if req.Kind != tt.kind || strings.Join(keys, ",") != tt.keys || string(req.Data) != tt.data ||
					req.NoReply != tt.noreply || req.Quiet != tt.quiet || string(req.Raw) != tt.in {
					t.Fatalf("%s: got kind %d keys %q data %q noreply %v quiet %v raw %q", mode, req.Kind, keys, req.Data, req.NoReply, req.Quiet, req.Raw)
				}
			}
		})
	}
}

func TestLineErrorResyncs(t *testing.T) {
	r := NewReader(strings.NewReader("bogus\r\nget a\r\n"), 8, DefaultLimits)
	if _, err := r.ReadRequest(); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("first: %v", err)
	}
	req, err := r.ReadRequest()
	if err != nil || string(req.Keys[0]) != "a" {
		t.Fatalf("second: %v", err)
	}
}

func TestReplies(t *testing.T) {
	values := "VALUE a 0 1\r\nx\r\nVALUE b 5 3 77\r\nEND\r\nEND\r\n"
	lines := []string{"STORED\r\n", "VA 2 t-1\r\nhi\r\n", "HD\r\n", "EN\r\n", "SERVER_ERROR out of memory\r\n"}
	for _, mode := range []string{"whole", "onebyte"} {
		var rd io.Reader = strings.NewReader(values + "SERVER_ERROR busy\r\n" + strings.Join(lines, ""))
		if mode == "onebyte" {
			rd = iotest.OneByteReader(rd)
		}
		r := NewReader(rd, 8, DefaultLimits)
		raw, err := r.ReadValueReply()
		if err != nil || string(raw) != values {
			t.Fatalf("%s: values %q %v", mode, raw, err)
		}
		vals, ok := SplitValues(raw, nil)
		if !ok || len(vals) != 2 || string(vals[0].Key) != "a" || string(vals[1].Raw) != "VALUE b 5 3 77\r\nEND\r\n" {
			t.Fatalf("%s: split %q %v", mode, vals, ok)
		}
		raw, err = r.ReadValueReply()
		if err != nil || string(raw) != "SERVER_ERROR busy\r\n" {
			t.Fatalf("%s: error reply %q %v", mode, raw, err)
		}
		for _, want := range lines {
			raw, err := r.ReadLineReply()
			if err != nil || string(raw) != want {
				t.Fatalf("%s: line %q %v, want %q", mode, raw, err, want)
			}
		}
	}
}

// FuzzReadRequest checks that no input panics the request parser and that
// what it returns is consistent: Raw is a prefix of the input stream, keys
// are inside the line, data blocks are inside Raw.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		// Traffic captured from memcached clients (pymemcache, libmemcached, mcbench).
		"set bench:000001 0 0 32\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
		"get bench:000001\r\n", "gets a b c\r\n", "delete a noreply\r\n", "incr n 1\r\n",
		"mg foo s v f t\r\n", "ms foo 3 T60 F5\r\nbar\r\n", "mn\r\n", "version\r\n", "gat 0 k\r\n",
		"cas k 0 0 1 12\r\nz\r\n", "set k 0 0 -1\r\n", "get " + strings.Repeat("k", 300) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 16, Limits{MaxValue: 1 << 12, MaxLine: 1 << 10, MaxKeys: 64})
		off := 0
		for range 1000 {
			req, err := r.ReadRequest()
			if err != nil {
				if errors.Is(err, ErrUnknownCommand) || errors.Is(err, ErrBadLine) {
					continue
				}
				return
			}
			if !bytes.Contains(in[off:], req.Raw) {
				t.Fatalf("raw %q not in input", req.Raw)
			}
			for _, k := range req.Keys {
				if !bytes.Contains(req.Line, k) {
					t.Fatalf("key %q not in line %q", k, req.Line)
				}
			}
			if req.Data != nil && !bytes.Contains(req.Raw, req.Data) {
				t.Fatalf("data %q not in raw %q", req.Data, req.Raw)
			}
		}
	})
}

// FuzzReadReply checks that no input panics the reply scanners.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"VALUE a 0 1\r\nx\r\nEND\r\n", "END\r\n", "STORED\r\n", "VA 3 f1\r\nabc\r\n", "EN\r\n", "VALUE a 0 99\r\nx",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, values bool) {
		r := NewReader(bytes.NewReader(in), 16, Limits{MaxValue: 1 << 12, MaxLine: 1 << 10, MaxKeys: 64})
		for range 1000 {
			var raw []byte
			var err error
			if values {
				raw, err = r.ReadValueReply()
				if err == nil {
					SplitValues(raw, nil)
				}
			} else {
				raw, err = r.ReadLineReply()
			}
			if err != nil {
				return
			}
			if len(raw) == 0 {
				t.Fatal("empty reply without error")
			}
		}
	})
}

// FuzzTry checks that the event-loop reading (Fill, then Try until it
// finds nothing) returns the same requests and replies as the blocking
// Read methods, whatever the input and however it is split. Mode 0 reads
// requests, 1 value replies, 2 line replies, 3 replies through MN.
func FuzzTry(f *testing.F) {
	for _, s := range []string{
		"set k 0 0 3\r\nabc\r\nget k j\r\nmn\r\n", "VALUE a 0 1\r\nx\r\nEND\r\nEND\r\n",
		"HD\r\nVA 3 f1\r\nabc\r\nMN\r\nMN\r\n", "STORED\r\nEN\r\n", "bogus\r\nget a\r\n",
	} {
		for mode := range uint8(4) {
			f.Add([]byte(s), uint8(3), mode)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, step, mode uint8) {
		mode %= 4
		lim := Limits{MaxValue: 1 << 12, MaxLine: 1 << 10, MaxKeys: 64}
		read := func(r *Reader) ([]byte, error) {
			switch mode {
			case 0:
				req, err := r.ReadRequest()
				if err != nil {
					return nil, err
				}
				return req.Raw, nil
			case 1:
				return r.ReadValueReply()
			case 2:
				return r.ReadLineReply()
			}
			var out []byte
			for {
				raw, err := r.ReadLineReply()
				if err != nil {
					return nil, err
				}
				out = append(out, raw...)
				if string(raw) == "MN\r\n" {
					return out, nil
				}
			}
		}
		try := func(r *Reader) ([]byte, bool, error) {
			switch mode {
			case 0:
				req, err := r.TryRequest()
				if req == nil || err != nil {
					return nil, false, err
				}
				return req.Raw, true, nil
			case 1:
				return r.TryValueReply()
			case 2:
				return r.TryLineReply()
			}
			return r.TryThroughMN()
		}
		rd := NewReader(bytes.NewReader(in), 16, lim)
		tr := NewReader(&testdeps.Chunks{In: in, Step: int(step%64) + 1}, 16, lim)
		testdeps.TryMatchesRead(t,
			func() ([]byte, error) { return read(rd) },
			func() ([]byte, bool, error) { return try(tr) },
			func() error { _, _, err := tr.Fill(); return err })
	})
}

// BenchmarkTryRequest is the shard's client path: take the buffered
// requests, then read once more.
func BenchmarkTryRequest(b *testing.B) {
	chunk := []byte(strings.Repeat("get key:000123\r\n", 16))
	rd := NewReader(&testdeps.Repeat{Chunk: chunk}, 16<<10, DefaultLimits)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		for {
			req, err := rd.TryRequest()
			if err != nil {
				b.Fatal(err)
			}
			if req == nil {
				break
			}
		}
		if _, _, err := rd.Fill(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTryValueReply is the shard's server path: take the buffered
// replies, then read once more.
func BenchmarkTryValueReply(b *testing.B) {
	chunk := []byte(strings.Repeat("VALUE key:000123 0 10\r\nvalue:0001\r\nEND\r\n", 16))
	rd := NewReader(&testdeps.Repeat{Chunk: chunk}, 16<<10, DefaultLimits)
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		for {
			_, ok, err := rd.TryValueReply()
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
