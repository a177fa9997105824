package testdeps

import (
	"errors"
	"io"
)

// ErrAgain is what a Chunks reader answers between chunks.
var ErrAgain = errors.New("try again")

// Chunks reads In Step bytes at a time and answers ErrAgain between the
// steps, as a non-blocking socket does between packets: for testing
// readers driven by an event loop.
type Chunks struct {
	In    []byte
	Step  int
	again bool
}

func (c *Chunks) Read(b []byte) (int, error) {
	if len(c.In) == 0 {
		return 0, io.EOF
	}
	if c.again = !c.again; !c.again {
		return 0, ErrAgain
	}
	n := copy(b, c.In[:min(max(c.Step, 1), len(c.In))])
	c.In = c.In[n:]
	return n, nil
}
