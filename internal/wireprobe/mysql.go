package wireprobe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// maxGreeting bounds the greeting packet MySQL reads: a real one is about
// a hundred bytes (the server's version string, a salt, capabilities and
// an auth plugin name).
const maxGreeting = 16 << 10

// MySQL reads the server's greeting (the initial handshake packet,
// protocol version 10) and returns nil for one, without answering it.
// An error packet instead of the greeting ("Too many connections", 1040;
// "Host ... is blocked", 1129; "Host ... is not allowed to connect", 1130)
// is an error wrapping ErrUnhealthy that names the code and the message.
// A server sends 1040 at the greeting only when even the slot kept for
// administrators is taken: while ordinary accounts are refused (after
// authenticating) and that slot is free, the probe passes.
//
// The server sees a client that went away during the handshake: MySQL
// and MariaDB count it in Aborted_connects and, for clients not on
// loopback, against max_connect_errors for the prober's address (the
// host is blocked once that many handshakes in a row fail, until a
// successful connection or FLUSH HOSTS). Keep max_connect_errors high
// where a remote broker probes a server.
func MySQL(ctx context.Context, c net.Conn) (err error) {
	stop, err := withDeadline(ctx, "mysql probe", c)
	if err != nil {
		return err
	}
	defer func() { err = stop(err) }()
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("connection closed before the server greeting")
		}
		return fmt.Errorf("reading the server greeting: %w", err)
	}
	n, err := greetingLength(hdr)
	if err != nil {
		return err
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(c, payload); err != nil {
		return fmt.Errorf("reading the %d-byte server greeting: %w", n, err)
	}
	_, err = parseGreeting(payload)
	return err
}

// greetingLength checks a packet header: a length within maxGreeting and
// sequence number 0.
func greetingLength(hdr [4]byte) (int, error) {
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if hdr[3] != 0 || n == 0 || n > maxGreeting {
		return 0, fmt.Errorf("%w: not a MySQL greeting (header %x: length %d, sequence %d)", ErrProtocol, hdr[:], n, hdr[3])
	}
	return n, nil
}

// parseGreeting checks a greeting packet's payload and returns the server
// version it names.
func parseGreeting(p []byte) (version string, err error) {
	if len(p) == 0 {
		return "", fmt.Errorf("%w: empty greeting", ErrProtocol)
	}
	switch p[0] {
	case 10:
		v, _, ok := bytes.Cut(p[1:], []byte{0})
		if !ok || len(v) == 0 || len(v) > 255 {
			return "", fmt.Errorf("%w: greeting without a server version string", ErrProtocol)
		}
		return string(v), nil
	case 0xff:
		return "", parseErrorPacket(p)
	case 9:
		return "", fmt.Errorf("%w: protocol version 9 (MySQL before 3.21) is not supported", ErrProtocol)
	}
	return "", fmt.Errorf("%w: not a MySQL greeting (first bytes %s)", ErrProtocol, printable(p, 16))
}

// parseErrorPacket decodes an ERR packet: 0xff, a 2-byte code, an
// optional '#' and 5-byte SQL state, and the message.
func parseErrorPacket(p []byte) error {
	if len(p) < 3 {
		return fmt.Errorf("%w: truncated error packet %x", ErrProtocol, p)
	}
	code := binary.LittleEndian.Uint16(p[1:3])
	msg := p[3:]
	state := ""
	if len(msg) >= 6 && msg[0] == '#' {
		state = string(msg[1:6])
		msg = msg[6:]
	}
	if len(msg) > 512 {
		msg = msg[:512]
	}
	if state != "" {
		return fmt.Errorf("%w: error %d (%s) at the greeting: %q", ErrUnhealthy, code, printable([]byte(state), 5), msg)
	}
	return fmt.Errorf("%w: error %d at the greeting: %q", ErrUnhealthy, code, msg)
}
