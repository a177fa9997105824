package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func newReader(rd io.Reader, size int) *Reader {
	f := &Reader{}
	f.Init(rd, size)
	return f
}

func TestMoreAndNext(t *testing.T) {
	f := newReader(iotest.OneByteReader(bytes.NewReader([]byte("hello world"))), 0)
	if len(f.buf) != MinSize {
		t.Fatalf("buffer %d bytes, want MinSize %d", len(f.buf), MinSize)
	}
	for f.Buffered() < 5 {
		if err := f.More(5 - f.Buffered()); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(f.Next(5)); got != "hello" {
		t.Fatalf("Next(5) = %q", got)
	}
	for {
		err := f.More(100)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("More: %v, want nil then io.EOF", err)
		}
		if f.Buffered() == 0 {
			t.Fatal("More returned with nothing read")
		}
		f.Next(f.Buffered())
	}
	if err := f.More(1); err != io.EOF {
		t.Errorf("More after the end: %v, want the kept io.EOF", err)
	}
}

func TestMoreInsideAFrame(t *testing.T) {
	f := newReader(bytes.NewReader([]byte("abc")), 0)
	if err := f.More(1); err != nil {
		t.Fatal(err)
	}
	if err := f.More(10); err != io.ErrUnexpectedEOF {
		t.Errorf("end with 3 bytes buffered: %v, want io.ErrUnexpectedEOF", err)
	}
	f.Next(3)
	if err := f.More(1); err != io.EOF {
		t.Errorf("end with nothing buffered: %v, want io.EOF", err)
	}
}

func TestMoreKeepsTheError(t *testing.T) {
	boom := errors.New("boom")
	f := newReader(iotest.DataErrReader(&errAfter{data: []byte("xy"), err: boom}), 0)
	if err := f.More(1); err != nil || string(f.Bytes()) != "xy" {
		t.Fatalf("More = %v with %q; want the data first", err, f.Bytes())
	}
	f.Next(2)
	for range 2 {
		if err := f.More(1); err != boom {
			t.Fatalf("More = %v, want %v, kept", err, boom)
		}
	}
	f.Reset(bytes.NewReader([]byte("z")))
	if err := f.More(1); err != nil || string(f.Bytes()) != "z" {
		t.Fatalf("after Reset: %v with %q", err, f.Bytes())
	}
}

type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

type nothing struct{}

func (nothing) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	if err := newReader(nothing{}, 0).More(1); err != io.ErrNoProgress {
		t.Errorf("More on a reader that returns nothing: %v, want io.ErrNoProgress", err)
	}
}

type liar struct{}

func (liar) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestFill(t *testing.T) {
	f := newReader(bytes.NewReader(bytes.Repeat([]byte("x"), 3*MinSize)), 0)
	n, full, err := f.Fill()
	if n != MinSize || !full || err != nil {
		t.Fatalf("Fill = %d, %v, %v; want %d, true, nil", n, full, err, MinSize)
	}
	f.Next(10)
	// Wanting more than the free space compacts, then doubles the buffer.
	f.Want(MinSize)
	n, full, err = f.Fill()
	if n != MinSize+10 || !full || err != nil || f.Buffered() != 2*MinSize || len(f.buf) != 2*MinSize {
		t.Fatalf("Fill after Want = %d, %v, %v with %d buffered in %d", n, full, err, f.Buffered(), len(f.buf))
	}
	f.Next(f.Buffered())
	f.Want(0)
	if n, full, err := f.Fill(); n != MinSize-10 || full || err != nil {
		t.Fatalf("Fill of the rest = %d, %v, %v; want %d, false, nil", n, full, err, MinSize-10)
	}
	if n, _, err := f.Fill(); n != 0 || err != io.EOF {
		t.Fatalf("Fill at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if _, _, err := newReader(liar{}, 0).Fill(); err != io.ErrShortBuffer {
		t.Errorf("Fill from a reader that claims too much: %v, want io.ErrShortBuffer", err)
	}
}

// TestSteadyStateAllocs: once the buffer fits the frames, nothing is
// allocated.
func TestSteadyStateAllocs(t *testing.T) {
	chunk := bytes.Repeat([]byte("0123456789"), 30)
	f := newReader(&repeat{chunk}, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, err := f.Fill(); err != nil {
			t.Fatal(err)
		}
		for f.Buffered() >= 7 {
			f.Next(7)
		}
		f.Want(7 - f.Buffered())
	})
	if allocs != 0 {
		t.Errorf("%v allocations per fill, want 0", allocs)
	}
}

type repeat struct{ chunk []byte }

func (r *repeat) Read(p []byte) (int, error) { return copy(p, r.chunk), nil }

// FuzzReader reads input in pieces of fuzzed sizes through More and Fill
// and takes frames of fuzzed sizes: what is taken is the input, in
// order, and what is wanted always fits after a Fill.
func FuzzReader(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{1, 2, 3})
	f.Add(bytes.Repeat([]byte("ab"), 700), []byte{200, 0, 255, 7})
	f.Fuzz(func(t *testing.T, input, steps []byte) {
		if len(steps) == 0 {
			steps = []byte{1}
		}
		src := &pieces{data: input, sizes: steps}
		r := newReader(src, int(steps[0]))
		var got []byte
		for i := 0; ; i++ {
			step := int(steps[i%len(steps)])
			var err error
			if step%2 == 0 {
				err = r.More(step)
			} else {
				r.Want(step)
				before := r.Buffered()
				_, _, err = r.Fill()
				if len(r.buf)-before < step && err == nil {
					t.Fatalf("Want(%d) then Fill left room for %d", step, len(r.buf)-before)
				}
			}
			if n := min(step%7+1, r.Buffered()); n > 0 {
				head := bytes.Clone(r.Bytes()[:n])
				if next := r.Next(n); !bytes.Equal(next, head) {
					t.Fatalf("Next(%d) = %q, Bytes began %q", n, next, head)
				}
				got = append(got, head...)
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				got = append(got, r.Next(r.Buffered())...)
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if i > 100*len(input)+100 {
				t.Fatal("no progress")
			}
		}
		if !bytes.Equal(got, input) {
			t.Fatalf("took %q, want %q", got, input)
		}
	})
}

// pieces returns data in pieces of the given sizes (modulo 64; 0:
// nothing this time, at most every other read).
type pieces struct {
	data  []byte
	sizes []byte
	i     int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := int(p.sizes[p.i%len(p.sizes)]) % 64
	if n == 0 && p.i%2 == 0 {
		n = 1 // an empty read now and then, never for long
	}
	p.i++
	n = min(n, len(b), len(p.data))
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}
