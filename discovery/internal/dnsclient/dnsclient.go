// Package dnsclient is a small stub resolver for discovery's dns: and srv:
// sources. Unlike net.Resolver it returns the records' TTLs, which decide
// when discovery looks again, and it says which server answered what.
//
// It asks the nameservers of a Config in turn (UDP, then TCP when the answer
// is truncated), each query with a random ID that the answer must carry,
// expands relative names with the search list as glibc and Go do, and
// follows CNAME chains inside one answer. It does no caching: its user
// re-resolves on the TTL.
package dnsclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Errors a lookup wraps (in an *Error), for errors.Is.
var (
	// ErrNotFound: the name does not exist (NXDOMAIN).
	ErrNotFound = errors.New("no such name (NXDOMAIN)")
	// ErrNoRecords: the name exists but has no records of the type asked.
	ErrNoRecords = errors.New("no records of that type")
	// ErrServerFailure: the server could not answer (SERVFAIL).
	ErrServerFailure = errors.New("server failure (SERVFAIL)")
	// ErrRefused: the server refused the query (REFUSED).
	ErrRefused = errors.New("query refused (REFUSED)")
	// ErrTimeout: no valid answer came within the timeout.
	ErrTimeout = errors.New("no answer")
	// ErrMalformed: the answer could not be parsed.
	ErrMalformed = errors.New("malformed answer")
	// errMismatch: a datagram that is not the answer to our query (another
	// ID or question); it is ignored, as a late or forged reply.
	errMismatch = errors.New("answer to another query")
)

// Error is a failed lookup: which name and type, which server (the last
// one asked), and why.
type Error struct {
	Name   string
	Type   dnsmessage.Type
	Server string
	Err    error
}

func (e *Error) Error() string {
	typ := strings.TrimPrefix(e.Type.String(), "Type")
	if e.Server == "" {
		return fmt.Sprintf("lookup %s %s: %v", e.Name, typ, e.Err)
	}
	return fmt.Sprintf("lookup %s %s on %s: %v", e.Name, typ, e.Server, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err says the name or its records do not
// exist (NXDOMAIN, or no records of the type), as opposed to a failure to
// get an answer.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoRecords)
}

// SRV is one SRV record.
type SRV struct {
	Target                 string // fully qualified, with the trailing dot
	Port, Priority, Weight uint16
}

// Hosts are the A and AAAA records of one name in an additional section.
type Hosts struct {
	Addrs []netip.Addr
	TTL   uint32 // the smallest TTL among them
}

// Response is the useful part of an answer.
type Response struct {
	// Name is the name that answered (after the search list), fully
	// qualified.
	Name string
	// Addrs are the A or AAAA records (for those types).
	Addrs []netip.Addr
	// SRV are the SRV records (for TypeSRV).
	SRV []SRV
	// Additional are the A and AAAA records of the additional section,
	// by lower-case fully qualified name (SRV targets, typically).
	Additional map[string]Hosts
	// TTL is the smallest TTL of the records used, CNAMEs included.
	TTL uint32

	// RCode and Truncated come from the header.
	RCode     dnsmessage.RCode
	Truncated bool
}

// Client asks the servers of its Config. It is safe for concurrent use.
type Client struct {
	cfg Config
	// Dial opens connections to servers (nil: a net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New returns a Client for c (defaults filled in: Timeout 5s, Attempts 2).
func New(c Config) *Client { return &Client{cfg: c.withDefaults()} }

// Config is the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// Lookup asks for the records of type t (A, AAAA or SRV) of name, trying
// the names the search list makes of it in turn. The error is an *Error;
// when every name is not found it is the one for name as given.
func (c *Client) Lookup(ctx context.Context, name string, t dnsmessage.Type) (*Response, error) {
	if len(c.cfg.Servers) == 0 {
		return nil, &Error{Name: name, Type: t, Err: errors.New("no nameserver configured")}
	}
	var failed, notFound, asIsErr error
	asIs := absolute(name)
	for _, fqdn := range c.cfg.Names(name) {
		r, err := c.lookupName(ctx, fqdn, t)
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		switch {
		case !IsNotFound(err):
			if failed == nil {
				failed = err
			}
		case fqdn == asIs:
			asIsErr = err
		default:
			notFound = err
		}
	}
	// A server that failed may know the name: its failure says more than
	// another name's NXDOMAIN.
	if failed != nil {
		return nil, failed
	}
	if asIsErr != nil {
		return nil, asIsErr
	}
	return nil, notFound
}

// lookupName asks each server in turn, Attempts times over, for one fully
// qualified name. A definite answer (records, NXDOMAIN, no records) ends
// the search; a failure (timeout, SERVFAIL, REFUSED) moves to the next
// server.
func (c *Client) lookupName(ctx context.Context, fqdn string, t dnsmessage.Type) (*Response, error) {
	qn, err := dnsmessage.NewName(fqdn)
	if err != nil || len(fqdn) > 254 {
		return nil, &Error{Name: fqdn, Type: t, Err: fmt.Errorf("%w: not a valid DNS name", ErrNotFound)}
	}
	q := dnsmessage.Question{Name: qn, Type: t, Class: dnsmessage.ClassINET}
	var last error
	for range c.cfg.Attempts {
		for _, server := range c.cfg.Servers {
			r, err := c.exchange(ctx, server, q)
			if err == nil {
				switch r.RCode {
				case dnsmessage.RCodeSuccess:
					if len(r.Addrs) == 0 && len(r.SRV) == 0 {
						return nil, &Error{Name: fqdn, Type: t, Server: server, Err: ErrNoRecords}
					}
					return r, nil
				case dnsmessage.RCodeNameError:
					return nil, &Error{Name: fqdn, Type: t, Server: server, Err: ErrNotFound}
				case dnsmessage.RCodeServerFailure:
					err = ErrServerFailure
				case dnsmessage.RCodeRefused:
					err = ErrRefused
				default:
					err = fmt.Errorf("the server answered %s", strings.TrimPrefix(r.RCode.String(), "RCode"))
				}
			}
			last = &Error{Name: fqdn, Type: t, Server: server, Err: err}
			if ctx.Err() != nil {
				return nil, last
			}
		}
	}
	return nil, last
}

// udpSize is the EDNS0 payload size advertised, the one DNS flag day 2020
// settled on: large enough for most answers, small enough not to fragment.
const udpSize = 1232

// exchange sends q to server over UDP, and again over TCP when the answer
// is truncated.
func (c *Client) exchange(ctx context.Context, server string, q dnsmessage.Question) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	r, err := c.roundTrip(ctx, "udp", server, q)
	if err != nil || !r.Truncated {
		return r, err
	}
	r, err = c.roundTrip(ctx, "tcp", server, q)
	if err != nil {
		return nil, fmt.Errorf("over TCP after a truncated answer: %w", err)
	}
	if r.Truncated {
		return nil, fmt.Errorf("%w: truncated over TCP", ErrMalformed)
	}
	return r, nil
}

func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (c *Client) roundTrip(ctx context.Context, network, server string, q dnsmessage.Question) (*Response, error) {
	id := uint16(rand.Uint32())
	msg, err := query(id, q, network == "tcp")
	if err != nil {
		return nil, err
	}
	conn, err := c.dial(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The context's end interrupts the reads, whatever the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	if _, err := conn.Write(msg); err != nil {
		return nil, err
	}
	if network == "tcp" {
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return nil, timeoutErr(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(conn, b); err != nil {
			return nil, timeoutErr(err)
		}
		r, err := ParseResponse(b, id, q)
		if errors.Is(err, errMismatch) {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return r, err
	}
	b := make([]byte, 65535)
	var ignored error
	for {
		n, err := conn.Read(b)
		if err != nil {
			err = timeoutErr(err)
			if ignored != nil {
				err = fmt.Errorf("%w (ignored a reply: %v)", err, ignored)
			}
			return nil, err
		}
		r, err := ParseResponse(b[:n], id, q)
		if err != nil {
			// Not our answer, or garbage: keep waiting for the real one,
			// as a forged or late datagram must not end the query.
			ignored = err
			continue
		}
		return r, nil
	}
}

func timeoutErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return err
}

// query builds the question message, recursion desired, with an EDNS0
// record offering udpSize (left out over TCP).
func query(id uint16, q dnsmessage.Question, tcp bool) ([]byte, error) {
	// Over TCP the message follows its 2-byte length; the Builder keeps
	// its compression offsets relative to where the message starts.
	start := 0
	if tcp {
		start = 2
	}
	b := dnsmessage.NewBuilder(make([]byte, start, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if !tcp {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(udpSize, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, err
	}
	if tcp {
		binary.BigEndian.PutUint16(msg, uint16(len(msg)-start))
	}
	return msg, nil
}

// maxChain bounds the CNAME hops followed inside one answer.
const maxChain = 16

// ParseResponse parses an answer to the question q sent with id: it
// checks the ID, the response bit and the question, reads the header's
// RCode and TC bit and, for a successful answer, the records of q's type
// reached from q's name through CNAMEs, and the A/AAAA records of the
// additional section. An answer to another query is an error; so is a
// message that cannot be parsed (wrapping ErrMalformed).
func ParseResponse(msg []byte, id uint16, q dnsmessage.Question) (*Response, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.ID != id || !h.Response {
		return nil, fmt.Errorf("%w: id %d, response %t", errMismatch, h.ID, h.Response)
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil, fmt.Errorf("%w: question: %v", ErrMalformed, err)
	}
	if len(qs) != 1 || qs[0].Type != q.Type || qs[0].Class != q.Class || !strings.EqualFold(qs[0].Name.String(), q.Name.String()) {
		return nil, fmt.Errorf("%w: the question is not the one asked", errMismatch)
	}
	r := &Response{Name: q.Name.String(), RCode: h.RCode, Truncated: h.Truncated}
	if h.Truncated || h.RCode != dnsmessage.RCodeSuccess {
		return r, nil
	}

	type cname struct {
		target string
		ttl    uint32
	}
	cnames := map[string]cname{}
	type rec struct {
		addr netip.Addr
		srv  SRV
		ttl  uint32
	}
	recs := map[string][]rec{}
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: answer: %v", ErrMalformed, err)
		}
		name := strings.ToLower(rh.Name.String())
		switch {
		case rh.Class != dnsmessage.ClassINET:
			err = p.SkipAnswer()
		case rh.Type == dnsmessage.TypeCNAME:
			var c dnsmessage.CNAMEResource
			c, err = p.CNAMEResource()
			cnames[name] = cname{strings.ToLower(c.CNAME.String()), rh.TTL}
		case rh.Type != q.Type:
			err = p.SkipAnswer()
		case rh.Type == dnsmessage.TypeA:
			var a dnsmessage.AResource
			a, err = p.AResource()
			recs[name] = append(recs[name], rec{addr: netip.AddrFrom4(a.A), ttl: rh.TTL})
		case rh.Type == dnsmessage.TypeAAAA:
			var a dnsmessage.AAAAResource
			a, err = p.AAAAResource()
			recs[name] = append(recs[name], rec{addr: netip.AddrFrom16(a.AAAA), ttl: rh.TTL})
		case rh.Type == dnsmessage.TypeSRV:
			var s dnsmessage.SRVResource
			s, err = p.SRVResource()
			recs[name] = append(recs[name], rec{srv: SRV{Target: s.Target.String(), Port: s.Port, Priority: s.Priority, Weight: s.Weight}, ttl: rh.TTL})
		default:
			err = p.SkipAnswer()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: answer %s: %v", ErrMalformed, rh.Name, err)
		}
	}

	ttl := uint32(1<<32 - 1)
	cur := strings.ToLower(q.Name.String())
	for range maxChain {
		if rs := recs[cur]; len(rs) > 0 {
			for _, x := range rs {
				ttl = min(ttl, x.ttl)
				if q.Type == dnsmessage.TypeSRV {
					r.SRV = append(r.SRV, x.srv)
				} else {
					r.Addrs = append(r.Addrs, x.addr)
				}
			}
			r.Name = cur
			break
		}
		c, ok := cnames[cur]
		if !ok {
			break
		}
		ttl = min(ttl, c.ttl)
		cur = c.target
	}
	if len(r.Addrs) == 0 && len(r.SRV) == 0 {
		return r, nil // the caller says ErrNoRecords
	}
	r.TTL = ttl

	if err := p.SkipAllAuthorities(); err != nil {
		return nil, fmt.Errorf("%w: authority: %v", ErrMalformed, err)
	}
	for {
		rh, err := p.AdditionalHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			// The answer is complete; a bad additional section only
			// costs the hints it would have given.
			break
		}
		var addr netip.Addr
		switch {
		case rh.Class == dnsmessage.ClassINET && rh.Type == dnsmessage.TypeA:
			a, err := p.AResource()
			if err != nil {
				return r, nil
			}
			addr = netip.AddrFrom4(a.A)
		case rh.Class == dnsmessage.ClassINET && rh.Type == dnsmessage.TypeAAAA:
			a, err := p.AAAAResource()
			if err != nil {
				return r, nil
			}
			addr = netip.AddrFrom16(a.AAAA)
		default:
			if err := p.SkipAdditional(); err != nil {
				return r, nil
			}
			continue
		}
		if r.Additional == nil {
			r.Additional = map[string]Hosts{}
		}
		name := strings.ToLower(rh.Name.String())
		h, ok := r.Additional[name]
		if !ok || rh.TTL < h.TTL {
			h.TTL = rh.TTL
		}
		h.Addrs = append(h.Addrs, addr)
		r.Additional[name] = h
	}
	return r, nil
}
