// Package memcache parses the memcached text protocol and its meta
// commands: requests from clients and replies from servers, without
// allocating per frame. Returned slices alias the reader's buffer and are
// valid until the next read.
package memcache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/podkit/podkit/internal/frame"
)

// ErrProtocol is wrapped by every error about malformed input. After a
// data block error the stream cannot be resynchronised and the connection
// should be closed; after a line error (ErrUnknownCommand, ErrBadLine) the
// next line is a new request.
var ErrProtocol = errors.New("protocol error")

// ErrUnknownCommand is a line naming no memcached command; memcached
// answers "ERROR".
var ErrUnknownCommand = fmt.Errorf("%w: unknown command", ErrProtocol)

// ErrBadLine is a request line with the wrong arguments; memcached answers
// "CLIENT_ERROR bad command line format".
var ErrBadLine = fmt.Errorf("%w: bad command line format", ErrProtocol)

// ErrBadData is a data block not followed by CRLF, or a line too long:
// the stream is lost.
var ErrBadData = fmt.Errorf("%w: bad data chunk", ErrProtocol)

// ErrTooLarge is a value or line over the reader's limits.
var ErrTooLarge = fmt.Errorf("%w: too large", ErrProtocol)

// Kind classifies a request by how it is routed and how its reply is framed.
type Kind uint8

const (
	KindUnknown     Kind = iota
	KindGet              // get, gets, gat, gats: multi-key, reply VALUE...END
	KindStore            // set, add, replace, append, prepend, cas: data block, one-line reply
	KindKey              // delete, incr, decr, touch: one key, one-line reply
	KindMeta             // mg, ms, md, ma, me: one key, meta reply
	KindMetaNoop         // mn
	KindLocal            // version, quit, verbosity: answered by the proxy
	KindUnsupported      // stats, flush_all, ...: cannot be sharded
)

// Request is one parsed client request.
type Request struct {
	Kind Kind
	Name []byte   // the command as sent
	Args [][]byte // tokens after the command name
	// Keys are the keys to route on (for gat/gats, after the exptime).
	Keys [][]byte
	// KeyIndex is the index in Args of the first key.
	KeyIndex int
	NoReply  bool // text "noreply"
	Quiet    bool // meta "q" flag
	Base64   bool // meta "b" flag: the key is base64
	// Data is the data block (without its CRLF), for storage and ms.
	Data []byte
	// Line is the request line without its line ending; Raw is the whole
	// request as received, line ending and data block included.
	Line, Raw []byte
}

// Limits bound what a Reader accepts.
type Limits struct {
	MaxValue int // largest data block
	MaxLine  int // longest request or reply line
	MaxKeys  int // most keys in one get
}

// DefaultLimits are memcached's defaults (1 MiB items).
var DefaultLimits = Limits{MaxValue: 1 << 20, MaxLine: 64 << 10, MaxKeys: 1 << 14}

// Reader reads requests or replies from an io.Reader.
type Reader struct {
	in     frame.Reader
	limits Limits
	req    Request
	toks   [][]byte // the request line's tokens, name first
}

// NewReader returns a Reader with an initial buffer of size bytes.
func NewReader(rd io.Reader, size int, limits Limits) *Reader {
	if limits.MaxValue <= 0 {
		limits.MaxValue = DefaultLimits.MaxValue
	}
	if limits.MaxLine <= 0 {
		limits.MaxLine = DefaultLimits.MaxLine
	}
	if limits.MaxKeys <= 0 {
		limits.MaxKeys = DefaultLimits.MaxKeys
	}
	r := &Reader{limits: limits}
	r.in.Init(rd, size)
	return r
}

// Buffered is the number of bytes read and not yet returned.
func (r *Reader) Buffered() int { return r.in.Buffered() }

// ReadRequest reads one request. The Request and its slices are valid
// until the next call. A line error (ErrUnknownCommand, ErrBadLine) has
// consumed the line; the next call reads the next request.
func (r *Reader) ReadRequest() (*Request, error) {
	for {
		need := 1
		if r.in.Buffered() > 0 {
			var n int
			var err error
			n, need, err = r.parseRequest(r.in.Bytes())
			if n > 0 {
				r.req.Raw = r.in.Next(n)
			}
			if err != nil {
				return nil, err
			}
			if n > 0 {
				if len(r.req.Name) == 0 {
					continue // blank line
				}
				return &r.req, nil
			}
		}
		if err := r.in.More(need); err != nil {
			return nil, err
		}
	}
}

// parseRequest returns the request length, or 0 and the bytes needed.
// A line error returns the line's length with the error.
func (r *Reader) parseRequest(b []byte) (n, need int, err error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		if len(b) > r.limits.MaxLine {
			return 0, 0, fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, r.limits.MaxLine)
		}
		return 0, 1, nil
	}
	line := b[:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	q := &r.req
	var args [][]byte
	keys := q.Keys[:0]
	*q = Request{Line: line}
	defer func() { q.Args, q.Keys = args, keys }()
	// r.toks keeps the tokens' full capacity for the next request (Args
	// starts after the name).
	r.toks = tokens(line, r.toks[:0])
	if len(r.toks) == 0 {
		return nl + 1, 0, nil
	}
	q.Name = r.toks[0]
	args = r.toks[1:]
	lineLen := nl + 1
	switch string(q.Name) {
	case "get", "gets", "gat", "gats":
		q.Kind = KindGet
		first := 0
		if q.Name[1] == 'a' {
			first = 1
			if len(args) < 1 || !isNumber(args[0]) {
				return lineLen, 0, ErrBadLine
			}
		}
		if len(args) <= first {
			return lineLen, 0, ErrBadLine
		}
		if len(args)-first > r.limits.MaxKeys {
			return lineLen, 0, fmt.Errorf("%w: %d keys, the limit is %d", ErrTooLarge, len(args)-first, r.limits.MaxKeys)
		}
		q.KeyIndex = first
		for _, k := range args[first:] {
			if len(k) > 250 {
				return lineLen, 0, ErrBadLine
			}
			keys = append(keys, k)
		}
		return lineLen, 0, nil
	case "set", "add", "replace", "append", "prepend", "cas":
		q.Kind = KindStore
		want := 4
		if q.Name[0] == 'c' {
			want = 5
		}
		if len(args) == want+1 && string(args[want]) == "noreply" {
			q.NoReply = true
		} else if len(args) != want {
			return lineLen, 0, ErrBadLine
		}
		if len(args[0]) > 250 {
			return lineLen, 0, ErrBadLine
		}
		for _, a := range args[1:want] {
			if !isNumber(a) {
				return lineLen, 0, ErrBadLine
			}
		}
		size, err := strconv.Atoi(string(args[3]))
		if err != nil || size < 0 {
			return lineLen, 0, ErrBadLine
		}
		keys = append(keys, args[0])
		return r.dataBlock(b, lineLen, size)
	case "delete", "incr", "decr", "touch":
		q.Kind = KindKey
		want := 2
		if q.Name[0] == 'd' && q.Name[1] == 'e' && q.Name[2] == 'l' {
			want = 1
		}
		if len(args) == want+1 && string(args[want]) == "noreply" {
			q.NoReply = true
		} else if len(args) != want {
			// memcached also accepts "delete key 0" (an old hold time).
			if !(want == 1 && len(args) >= 2 && string(args[1]) == "0" && (len(args) == 2 || string(args[2]) == "noreply")) {
				return lineLen, 0, ErrBadLine
			}
			q.NoReply = len(args) == 3
		}
		if len(args[0]) > 250 || (want == 2 && !isNumber(args[1])) {
			return lineLen, 0, ErrBadLine
		}
		keys = append(keys, args[0])
		return lineLen, 0, nil
	case "mg", "ms", "md", "ma", "me":
		q.Kind = KindMeta
		if len(args) < 1 || len(args[0]) > 250 {
			return lineLen, 0, ErrBadLine
		}
		keys = append(keys, args[0])
		flags := args[1:]
		if q.Name[1] == 's' {
			if len(args) < 2 || !isNumber(args[1]) {
				return lineLen, 0, ErrBadLine
			}
			flags = args[2:]
		}
		for _, f := range flags {
			switch f[0] {
			case 'q':
				q.Quiet = true
			case 'b':
				q.Base64 = true
			}
		}
		if q.Name[1] == 's' {
			size, err := strconv.Atoi(string(args[1]))
			if err != nil || size < 0 {
				return lineLen, 0, ErrBadLine
			}
			return r.dataBlock(b, lineLen, size)
		}
		return lineLen, 0, nil
	case "mn":
		q.Kind = KindMetaNoop
		return lineLen, 0, nil
	case "version", "quit", "verbosity":
		q.Kind = KindLocal
		return lineLen, 0, nil
	case "stats", "flush_all", "cache_memlimit", "shutdown", "slabs", "lru", "lru_crawler", "watch", "misbehave", "debugtime":
		q.Kind = KindUnsupported
		return lineLen, 0, nil
	}
	return lineLen, 0, ErrUnknownCommand
}

// dataBlock completes a storage request whose line is lineLen bytes long.
func (r *Reader) dataBlock(b []byte, lineLen, size int) (n, need int, err error) {
	if size > r.limits.MaxValue {
		// The data cannot be skipped reliably; the stream is lost.
		return lineLen, 0, fmt.Errorf("%w: value of %d bytes, the limit is %d", ErrTooLarge, size, r.limits.MaxValue)
	}
	end := lineLen + size + 2
	if end > len(b) {
		return 0, end - len(b), nil
	}
	if b[end-2] != '\r' || b[end-1] != '\n' {
		return lineLen, 0, ErrBadData
	}
	r.req.Data = b[lineLen : lineLen+size]
	return end, 0, nil
}

// ReadValueReply reads a retrieval reply: VALUE blocks up to END, or a
// single error line. It returns the raw bytes.
func (r *Reader) ReadValueReply() ([]byte, error) {
	return r.readReply(scanValues)
}

// ReadLineReply reads a one-line reply, or a meta reply with a data block
// ("VA <size> ...").
func (r *Reader) ReadLineReply() ([]byte, error) {
	return r.readReply(scanMeta)
}

func (r *Reader) readReply(scan func(b []byte, l Limits) (int, int, error)) ([]byte, error) {
	for {
		need := 1
		if r.in.Buffered() > 0 {
			var n int
			var err error
			n, need, err = scan(r.in.Bytes(), r.limits)
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

func scanMeta(b []byte, l Limits) (int, int, error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		if len(b) > l.MaxLine {
			return 0, 0, ErrTooLarge
		}
		return 0, 1, nil
	}
	if len(b) >= 3 && b[0] == 'V' && b[1] == 'A' && b[2] == ' ' {
		line := bytes.TrimRight(b[:nl], "\r")
		var buf [8][]byte
		toks := tokens(line, buf[:0])
		if len(toks) < 2 {
			return 0, 0, fmt.Errorf("%w: bad VA line", ErrProtocol)
		}
		size, err := strconv.Atoi(string(toks[1]))
		if err != nil || size < 0 || size > l.MaxValue {
			return 0, 0, fmt.Errorf("%w: bad VA size", ErrProtocol)
		}
		end := nl + 1 + size + 2
		if end > len(b) {
			return 0, end - len(b), nil
		}
		return end, 0, nil
	}
	return nl + 1, 0, nil
}

func scanValues(b []byte, l Limits) (int, int, error) {
	pos := 0
	for {
		nl := bytes.IndexByte(b[pos:], '\n')
		if nl < 0 {
			if len(b)-pos > l.MaxLine {
				return 0, 0, ErrTooLarge
			}
			return 0, 1, nil
		}
		line := b[pos : pos+nl]
		next := pos + nl + 1
		if !bytes.HasPrefix(line, []byte("VALUE ")) {
			// END, or an error line (ERROR, CLIENT_ERROR, SERVER_ERROR).
			return next, 0, nil
		}
		var buf [8][]byte
		toks := tokens(bytes.TrimRight(line, "\r"), buf[:0])
		if len(toks) < 4 {
			return 0, 0, fmt.Errorf("%w: bad VALUE line", ErrProtocol)
		}
		size, err := strconv.Atoi(string(toks[3]))
		if err != nil || size < 0 || size > l.MaxValue {
			return 0, 0, fmt.Errorf("%w: bad VALUE size", ErrProtocol)
		}
		pos = next + size + 2
		if pos > len(b) {
			return 0, pos - len(b), nil
		}
	}
}

// Value is one VALUE block of a retrieval reply.
type Value struct {
	Key []byte
	Raw []byte // "VALUE ...\r\n<data>\r\n"
}

// SplitValues splits a complete retrieval reply into its VALUE blocks,
// appending to vals. ok is false if the reply is an error line.
func SplitValues(raw []byte, vals []Value) (_ []Value, ok bool) {
	pos := 0
	for pos < len(raw) {
		nl := bytes.IndexByte(raw[pos:], '\n')
		if nl < 0 {
			return vals, false
		}
		line := raw[pos : pos+nl]
		if !bytes.HasPrefix(line, []byte("VALUE ")) {
			return vals, bytes.Equal(bytes.TrimRight(line, "\r"), []byte("END"))
		}
		var buf [8][]byte
		toks := tokens(bytes.TrimRight(line, "\r"), buf[:0])
		if len(toks) < 4 {
			return vals, false
		}
		size, err := strconv.Atoi(string(toks[3]))
		if err != nil || size < 0 {
			return vals, false
		}
		end := pos + nl + 1 + size + 2
		if end > len(raw) {
			return vals, false
		}
		vals = append(vals, Value{Key: toks[1], Raw: raw[pos:end]})
		pos = end
	}
	return vals, false
}

// tokens splits line on spaces, appending to dst.
func tokens(line []byte, dst [][]byte) [][]byte {
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' {
			j++
		}
		if j > i {
			dst = append(dst, line[i:j:j])
		}
		i = j
	}
	return dst
}

func isNumber(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if b[0] == '-' {
		b = b[1:]
		if len(b) == 0 {
			return false
		}
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// TryRequest is ReadRequest without reading from the connection: it
// returns nil and no error when no complete request is buffered. Earlier
// requests' slices stay valid, but the Request itself is reused.
func (r *Reader) TryRequest() (*Request, error) {
	for r.in.Buffered() > 0 {
		n, need, err := r.parseRequest(r.in.Bytes())
		if n > 0 {
			r.req.Raw = r.in.Next(n)
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			r.in.Want(need)
			return nil, nil
		}
		if len(r.req.Name) > 0 {
			return &r.req, nil
		}
	}
	return nil, nil
}

// Wait blocks until input is buffered, or returns the read error (io.EOF
// when the peer closed).
func (r *Reader) Wait() error {
	if r.in.Buffered() > 0 {
		return nil
	}
	return r.in.More(1)
}

// TryValueReply is ReadValueReply without reading from the connection:
// ok is false when no complete reply is buffered.
func (r *Reader) TryValueReply() (raw []byte, ok bool, err error) {
	return r.tryReply(scanValues)
}

// TryLineReply is ReadLineReply without reading from the connection.
func (r *Reader) TryLineReply() (raw []byte, ok bool, err error) {
	return r.tryReply(scanMeta)
}

// TryThroughMN returns the meta replies up to and including "MN\r\n" once
// all of them are buffered (what a quiet request followed by mn gets).
func (r *Reader) TryThroughMN() (raw []byte, ok bool, err error) {
	return r.tryReply(scanThroughMN)
}

func scanThroughMN(b []byte, l Limits) (int, int, error) {
	pos := 0
	for {
		n, need, err := scanMeta(b[pos:], l)
		if err != nil || n == 0 {
			return 0, need, err
		}
		pos += n
		if n == 4 && string(b[pos-4:pos]) == "MN\r\n" {
			return pos, 0, nil
		}
		if pos == len(b) {
			return 0, 1, nil
		}
	}
}

func (r *Reader) tryReply(scan func(b []byte, l Limits) (int, int, error)) ([]byte, bool, error) {
	if r.in.Buffered() == 0 {
		r.in.Want(1)
		return nil, false, nil
	}
	n, need, err := scan(r.in.Bytes(), r.limits)
	if err != nil || n == 0 {
		r.in.Want(need)
		return nil, false, err
	}
	return r.in.Next(n), true, nil
}

// Fill reads from the connection once, into room for at least the bytes
// the last Try call found missing; it may move the buffer. It reports how
// many bytes it read and whether they filled the free space. Unlike the
// Read methods it does not keep the error.
func (r *Reader) Fill() (n int, full bool, err error) { return r.in.Fill() }
