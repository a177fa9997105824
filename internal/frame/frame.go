// Package frame is the read buffer under podkit's parsers of framed
// protocols (RESP, memcached): the parser looks at the unread input in
// place, takes a complete frame out of it without copying, and asks for
// more input when a frame is not complete, blocking (More) or, on a
// non-blocking connection, with one read at a time (Fill).
//
// A Reader allocates only when a frame does not fit its buffer: the
// buffer then doubles (or grows to what the parser said it needs) and
// keeps that size. Slices returned by Next alias the buffer and are valid
// until the next More or Fill, which may move what is unread to the
// front of the buffer or to a larger one.
package frame

import "io"

// MinSize is the smallest buffer a Reader starts with.
const MinSize = 512

// Reader buffers input from an io.Reader for a parser. Its zero value is
// not usable: call Init.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int   // buf[r:w] is read and not yet taken
	err  error // sticky error of More
	want int   // bytes the parser last found missing (for Fill)
}

// Init makes f read from rd through a buffer of size bytes (at least
// MinSize).
func (f *Reader) Init(rd io.Reader, size int) {
	*f = Reader{rd: rd, buf: make([]byte, max(size, MinSize))}
}

// Reset makes f read from rd, dropping anything buffered and a sticky
// error; the buffer is kept.
func (f *Reader) Reset(rd io.Reader) {
	f.rd, f.r, f.w, f.err, f.want = rd, 0, 0, nil, 0
}

// Buffered is the number of bytes read and not yet taken.
func (f *Reader) Buffered() int { return f.w - f.r }

// Bytes is the input read and not yet taken, in place: the parser looks
// for a frame at its start.
func (f *Reader) Bytes() []byte { return f.buf[f.r:f.w] }

// Next takes the first n buffered bytes (n <= Buffered()) and returns
// them, in place.
func (f *Reader) Next(n int) []byte {
	b := f.buf[f.r : f.r+n]
	f.r += n
	return b
}

// Want records that the parser found no complete frame and needs at least
// n more bytes for one: the next Fill makes room for them.
func (f *Reader) Want(n int) { f.want = n }

// room compacts or grows the buffer so that need more bytes fit.
func (f *Reader) room(need int) {
	if f.r > 0 && (f.r == f.w || len(f.buf)-f.w < need) {
		n := copy(f.buf, f.buf[f.r:f.w])
		f.r, f.w = 0, n
	}
	if len(f.buf)-f.w < need {
		nb := make([]byte, max(2*len(f.buf), f.w+need))
		copy(nb, f.buf[:f.w])
		f.buf = nb
	}
}

// More reads until some input arrives, making room for at least need
// more bytes (need < 1: one). The first read error is kept and returned
// by every later More; input read with it is returned first. An input
// that ends inside a frame (bytes are buffered) gives
// io.ErrUnexpectedEOF instead of io.EOF. A reader that keeps returning
// nothing and no error gives io.ErrNoProgress.
func (f *Reader) More(need int) error {
	err := f.more(max(need, 1))
	if err == io.EOF && f.w > f.r {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (f *Reader) more(need int) error {
	if f.err != nil {
		return f.err
	}
	f.room(need)
	for range 100 {
		n, err := f.rd.Read(f.buf[f.w:])
		f.w += n
		if err != nil {
			f.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	f.err = io.ErrNoProgress
	return f.err
}

// Fill reads once, into room for at least the bytes the parser last
// wanted (see Want; one if it wanted none). It reports how many bytes it
// read and whether they filled the free space (more may be waiting).
// Unlike More it keeps no error: a non-blocking reader's "try again" is
// just returned.
func (f *Reader) Fill() (n int, full bool, err error) {
	f.room(max(f.want, 1))
	free := len(f.buf) - f.w
	n, err = f.rd.Read(f.buf[f.w:])
	if n < 0 || n > free {
		return 0, false, io.ErrShortBuffer
	}
	f.w += n
	return n, n == free, err
}
