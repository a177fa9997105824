package testdeps

import (
	"bytes"
	"testing"
)

// TryMatchesRead checks a parser's event-loop reading against its
// blocking reading of the same input, for the fuzz tests of the framed
// protocols (RESP, memcached). read returns the next frame from a reader
// over the whole input, until it fails; try returns the next frame from
// a second reader, over the input arriving in Chunks, or false when the
// buffered input holds no complete frame, and fill then reads once more
// (it fails with ErrAgain between the chunks). Both must give the same
// frames. It returns them (cloned) for further checks.
func TryMatchesRead(t testing.TB, read func() ([]byte, error), try func() ([]byte, bool, error), fill func() error) [][]byte {
	t.Helper()
	var want [][]byte
	for {
		raw, err := read()
		if err != nil {
			break
		}
		want = append(want, bytes.Clone(raw))
	}
	var got [][]byte
outer:
	for range 10000 {
		for {
			raw, ok, err := try()
			if err != nil {
				break outer
			}
			if !ok {
				break
			}
			got = append(got, bytes.Clone(raw))
		}
		if err := fill(); err != nil && err != ErrAgain {
			break
		}
	}
	if len(got) != len(want) {
		t.Fatalf("Try read %d frames, Read %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: Try %q, Read %q", i, got[i], want[i])
		}
	}
	return want
}

// Repeat is an io.Reader that returns Chunk on every Read, as a busy
// connection would: the endless input of a parser's benchmark.
type Repeat struct{ Chunk []byte }

func (r *Repeat) Read(p []byte) (int, error) { return copy(p, r.Chunk), nil }
