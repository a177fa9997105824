package discovery

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/podkit/podkit/discovery/internal/dnsclient"
)

// FuzzParseDNSSource: any dns: or srv: spec is a source with a valid name
// and port, or an ErrBadSource; never a panic.
func FuzzParseDNSSource(f *testing.F) {
	for _, s := range []string{
		"redis:6379", "redis.default.svc.cluster.local.:1", "_redis._tcp.example.com", "10.0.0.1:80",
		"[::1]:53", ":", "a..b:1", "x:99999", "_a._b.c:1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		for _, kind := range []string{"dns:", "srv:"} {
			src, err := Parse(kind+spec, Options{})
			if err != nil {
				if !errors.Is(err, ErrBadSource) {
					t.Fatalf("Parse(%q): %v does not wrap ErrBadSource", kind+spec, err)
				}
				continue
			}
			s := src.(*dnsSource)
			if !validName(s.name) {
				t.Fatalf("Parse(%q) accepted the name %q", kind+spec, s.name)
			}
			if kind == "dns:" && (s.port < 1 || s.port > 65535) {
				t.Fatalf("Parse(%q) accepted the port %d", kind+spec, s.port)
			}
		}
	})
}

// responseSeeds are answers a server might send to "svc.example." (A and
// SRV): plain, with a CNAME chain, with additional records, truncated,
// NXDOMAIN.
func responseSeeds(f *testing.F) {
	name := dnsmessage.MustNewName("svc.example.")
	alias := dnsmessage.MustNewName("real.example.")
	target := dnsmessage.MustNewName("t.example.")
	build := func(h dnsmessage.Header, t dnsmessage.Type, answers func(b *dnsmessage.Builder)) []byte {
		h.ID, h.Response = 42, true
		b := dnsmessage.NewBuilder(nil, h)
		b.EnableCompression()
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: name, Type: t, Class: dnsmessage.ClassINET})
		b.StartAnswers()
		if answers != nil {
			answers(&b)
		}
		msg, err := b.Finish()
		if err != nil {
			f.Fatal(err)
		}
		return msg
	}
	rh := func(n dnsmessage.Name, ttl uint32) dnsmessage.ResourceHeader {
		return dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: ttl}
	}
	f.Add(build(dnsmessage.Header{}, dnsmessage.TypeA, func(b *dnsmessage.Builder) {
		b.AResource(rh(name, 30), dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}})
		b.AResource(rh(name, 10), dnsmessage.AResource{A: [4]byte{10, 0, 0, 2}})
	}), uint16(dnsmessage.TypeA))
	f.Add(build(dnsmessage.Header{}, dnsmessage.TypeA, func(b *dnsmessage.Builder) {
		b.CNAMEResource(rh(name, 5), dnsmessage.CNAMEResource{CNAME: alias})
		b.AResource(rh(alias, 30), dnsmessage.AResource{A: [4]byte{10, 0, 0, 3}})
	}), uint16(dnsmessage.TypeA))
	f.Add(build(dnsmessage.Header{}, dnsmessage.TypeSRV, func(b *dnsmessage.Builder) {
		b.SRVResource(rh(name, 30), dnsmessage.SRVResource{Priority: 1, Weight: 5, Port: 6379, Target: target})
		b.StartAdditionals()
		b.AResource(rh(target, 30), dnsmessage.AResource{A: [4]byte{10, 0, 0, 4}})
		b.AAAAResource(rh(target, 30), dnsmessage.AAAAResource{AAAA: netip.IPv6Loopback().As16()})
	}), uint16(dnsmessage.TypeSRV))
	f.Add(build(dnsmessage.Header{Truncated: true}, dnsmessage.TypeA, nil), uint16(dnsmessage.TypeA))
	f.Add(build(dnsmessage.Header{RCode: dnsmessage.RCodeNameError}, dnsmessage.TypeA, nil), uint16(dnsmessage.TypeA))
	f.Add([]byte{0, 42, 0x80}, uint16(dnsmessage.TypeA))
}

// FuzzParseResponse: whatever a server (or anyone who can send a
// datagram to the resolver's port) sends is parsed or refused, never a
// panic; what is returned is consistent with the question.
func FuzzParseResponse(f *testing.F) {
	responseSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte, typ uint16) {
		qt := dnsmessage.TypeA
		switch dnsmessage.Type(typ) {
		case dnsmessage.TypeAAAA, dnsmessage.TypeSRV:
			qt = dnsmessage.Type(typ)
		}
		q := dnsmessage.Question{Name: dnsmessage.MustNewName("svc.example."), Type: qt, Class: dnsmessage.ClassINET}
		r, err := dnsclient.ParseResponse(msg, 42, q)
		if err != nil {
			return
		}
		if r.RCode != dnsmessage.RCodeSuccess || r.Truncated {
			if len(r.Addrs) != 0 || len(r.SRV) != 0 {
				t.Fatalf("records from a failed or truncated answer: %+v", r)
			}
			return
		}
		if qt == dnsmessage.TypeSRV && len(r.Addrs) != 0 || qt != dnsmessage.TypeSRV && len(r.SRV) != 0 {
			t.Fatalf("records of another type than %v: %+v", qt, r)
		}
		for _, a := range r.Addrs {
			if qt == dnsmessage.TypeA && !a.Is4() || qt == dnsmessage.TypeAAAA && !a.Is6() {
				t.Fatalf("%v answer holds %v", qt, a)
			}
		}
		for _, s := range r.SRV {
			if !strings.HasSuffix(s.Target, ".") {
				t.Fatalf("SRV target %q is not fully qualified", s.Target)
			}
		}
	})
}

// FuzzParseResolvConf: any resolv.conf gives nameservers that are
// HOST:PORT with an IP host and options within glibc's bounds, or an
// error; never a panic.
func FuzzParseResolvConf(f *testing.F) {
	for _, s := range []string{
		"nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n",
		"nameserver ::1\nnameserver fe80::1%eth0\ndomain example.com\noptions timeout:1 attempts:3 rotate\n",
		"# nothing\n", "nameserver\n", "options ndots:-1 ndots:999999999999999999999\nnameserver 1.1.1.1",
		"search .\nnameserver 1.1.1.1\n", "nameserver 1.1.1.1 ; comment\n\x00\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := dnsclient.ParseResolvConf(data)
		if err != nil {
			return
		}
		if len(c.Servers) == 0 || len(c.Servers) > 3 {
			t.Fatalf("%d nameservers", len(c.Servers))
		}
		for _, s := range c.Servers {
			if _, err := netip.ParseAddrPort(s); err != nil {
				t.Fatalf("nameserver %q: %v", s, err)
			}
		}
		if c.Ndots < 0 || c.Ndots > 15 || c.Attempts < 1 || c.Attempts > 5 || c.Timeout <= 0 {
			t.Fatalf("options out of bounds: %+v", c)
		}
		for _, d := range c.Search {
			if !strings.HasSuffix(d, ".") || d == "." {
				t.Fatalf("search domain %q", d)
			}
		}
		for _, n := range c.Names("redis") {
			if !strings.HasSuffix(n, ".") {
				t.Fatalf("name %q is not fully qualified", n)
			}
		}
	})
}
