package wireprobe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// sslRequest is PostgreSQL's SSLRequest: length 8, code 80877103.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// maxPGError bounds the error message Postgres reads.
const maxPGError = 8 << 10

// Postgres sends an SSLRequest, the first message of a PostgreSQL
// connection, and expects the one-byte answer 'S' (TLS available) or 'N'
// (not): either means a PostgreSQL server is answering. An ErrorResponse
// instead is an error wrapping ErrUnhealthy with its severity, SQLSTATE
// code and message. It does not start TLS or a session; a server that
// answered 'N' logs nothing for the connection, one that answered 'S'
// may log a failed TLS handshake.
func Postgres(ctx context.Context, c net.Conn) (err error) {
	stop, err := withDeadline(ctx, "postgres probe", c)
	if err != nil {
		return err
	}
	defer func() { err = stop(err) }()
	if _, err := c.Write(sslRequest); err != nil {
		return fmt.Errorf("sending SSLRequest: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("connection closed before an answer to SSLRequest")
		}
		return fmt.Errorf("reading the answer to SSLRequest: %w", err)
	}
	switch b[0] {
	case 'S', 'N':
		return nil
	case 'E':
		// A v3 ErrorResponse has a length; an old server's is a C string.
		// Read what arrives, up to maxPGError, until the message is whole.
		buf := make([]byte, 0, 256)
		for len(buf) < maxPGError {
			if m, done := parsePGError(buf); done {
				return fmt.Errorf("%w: %s", ErrUnhealthy, m)
			}
			chunk := make([]byte, min(4096, maxPGError-len(buf)))
			n, err := c.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if err != nil {
				m, _ := parsePGError(buf)
				return fmt.Errorf("%w: %s", ErrUnhealthy, m)
			}
		}
		m, _ := parsePGError(buf)
		return fmt.Errorf("%w: %s", ErrUnhealthy, m)
	}
	return fmt.Errorf("%w: answer %q to SSLRequest is not 'S', 'N' or an error", ErrProtocol, b[0])
}

// parsePGError decodes the bytes after an 'E': a v3 ErrorResponse
// (length, then fields of a type byte and a C string, ended by a zero
// byte) or, from a server that only speaks protocol 2, a C string. It
// returns a description and whether b holds the whole message.
func parsePGError(b []byte) (string, bool) {
	if len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if n >= 5 && n <= maxPGError {
			if len(b) < n {
				return "error response truncated", false
			}
			return pgFields(b[4:n]), true
		}
	}
	if len(b) >= 4 && b[0] != 0 {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			return fmt.Sprintf("error %q", clip(b[:i])), true
		}
	}
	if len(b) < 4 {
		return "error response truncated", false
	}
	return fmt.Sprintf("malformed error response %s", printable(b, 32)), false
}

// pgFields describes an ErrorResponse's fields: S (severity), C (code),
// M (message).
func pgFields(b []byte) string {
	var sev, code, msg string
	for len(b) > 0 && b[0] != 0 {
		t := b[0]
		v, rest, ok := bytes.Cut(b[1:], []byte{0})
		if !ok {
			break
		}
		switch t {
		case 'S':
			sev = string(clip(v))
		case 'C':
			code = string(clip(v))
		case 'M':
			msg = string(clip(v))
		}
		b = rest
	}
	var s strings.Builder
	s.WriteString("error")
	if sev != "" {
		s.WriteString(" " + sev)
	}
	if code != "" {
		s.WriteString(" " + code)
	}
	fmt.Fprintf(&s, ": %q", msg)
	return s.String()
}

func clip(b []byte) []byte {
	if len(b) > 512 {
		return b[:512]
	}
	return b
}
