package dnsclient

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/podkit/podkit/internal/testdeps"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name, in string
		want     Config
		err      string
	}{
		{"plain", "nameserver 10.0.0.10\n", Config{Servers: []string{"10.0.0.10:53"}, Ndots: 1, Timeout: 5 * time.Second, Attempts: 2}, ""},
		{"kubernetes", "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
			Config{Servers: []string{"10.96.0.10:53"}, Search: []string{"default.svc.cluster.local.", "svc.cluster.local.", "cluster.local."}, Ndots: 5, Timeout: 5 * time.Second, Attempts: 2}, ""},
		{"ipv6, comments, options clamped", "# c\nnameserver ::1 ; x\nnameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\noptions ndots:99 timeout:100 attempts:0 rotate edns0\n",
			Config{Servers: []string{"[::1]:53", "1.1.1.1:53", "2.2.2.2:53"}, Ndots: 15, Timeout: 30 * time.Second, Attempts: 1}, ""},
		{"last of domain and search wins", "search a.example b.example\ndomain c.example\nnameserver 127.0.0.1\n",
			Config{Servers: []string{"127.0.0.1:53"}, Search: []string{"c.example."}, Ndots: 1, Timeout: 5 * time.Second, Attempts: 2}, ""},
		{"bad option values ignored", "nameserver 127.0.0.1\noptions ndots:x timeout:-1 ndots\n",
			Config{Servers: []string{"127.0.0.1:53"}, Ndots: 1, Timeout: 5 * time.Second, Attempts: 2}, ""},
		{"no nameserver", "search example.com\n", Config{}, "no nameserver line"},
		{"bad nameserver", "nameserver dns.example\n", Config{}, `"dns.example" is not an IP address`},
		{"empty", "", Config{}, "no nameserver line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResolvConf([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Servers, tt.want.Servers) || !slices.Equal(got.Search, tt.want.Search) ||
				got.Ndots != tt.want.Ndots || got.Timeout != tt.want.Timeout || got.Attempts != tt.want.Attempts {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	c := Config{Search: []string{"ns.svc.cluster.local.", "cluster.local."}, Ndots: 2}
	tests := []struct {
		in   string
		want []string
	}{
		{"redis", []string{"redis.ns.svc.cluster.local.", "redis.cluster.local.", "redis."}},
		{"redis.other", []string{"redis.other.ns.svc.cluster.local.", "redis.other.cluster.local.", "redis.other."}},
		{"redis.other.svc", []string{"redis.other.svc.", "redis.other.svc.ns.svc.cluster.local.", "redis.other.svc.cluster.local."}},
		{"redis.", []string{"redis."}},
	}
	for _, tt := range tests {
		if got := c.Names(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Names(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeServer is a fake DNS server (named so: dnsmasq never truncates an
// answer this small, so the TCP fallback needs a server that does). Over
// UDP it answers with the TC bit set and no records; over TCP with the
// full answer. It counts the queries of each kind.
type fakeServer struct {
	addr      string
	udp, tcp  chan struct{}
	answerA   netip.Addr
	forgeUDP  bool // send a reply with a wrong ID before the real one
	truncated bool
}

func startFake(t *testing.T, f *fakeServer) {
	t.Helper()
	// The fake answers UDP and TCP on one port: take a UDP port whose
	// TCP twin is free.
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	for range 50 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("no loopback port free for both UDP and TCP in 50 tries: %v", err)
	}
	f.addr = pc.LocalAddr().String()
	t.Cleanup(func() { pc.Close(); l.Close() })
	f.udp, f.tcp = make(chan struct{}, 100), make(chan struct{}, 100)
	go func() {
		b := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			f.udp <- struct{}{}
			if f.forgeUDP {
				forged := f.reply(t, b[:n], false)
				binary.BigEndian.PutUint16(forged, binary.BigEndian.Uint16(forged)+1)
				pc.WriteTo(forged, from)
			}
			pc.WriteTo(f.reply(t, b[:n], f.truncated), from)
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.tcp <- struct{}{}
			go func() {
				defer c.Close()
				var lb [2]byte
				if _, err := io.ReadFull(c, lb[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(lb[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				r := f.reply(t, q, false)
				c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r))))
				c.Write(r)
			}()
		}
	}()
}

// reply answers the query q with one A record of f.answerA (TTL 7), or
// with the TC bit and no records.
func (f *fakeServer) reply(t *testing.T, q []byte, truncated bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		t.Errorf("fake server: %v", err)
		return nil
	}
	qq, err := p.Question()
	if err != nil {
		t.Errorf("fake server: %v", err)
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Truncated: truncated, RecursionDesired: h.RecursionDesired})
	b.StartQuestions()
	b.Question(qq)
	if !truncated {
		b.StartAnswers()
		b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 7}, dnsmessage.AResource{A: f.answerA.As4()})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Errorf("fake server: %v", err)
	}
	return msg
}

func TestTruncatedFallsBackToTCP(t *testing.T) {
	f := &fakeServer{answerA: netip.MustParseAddr("192.0.2.7"), truncated: true}
	startFake(t, f)
	c := New(Config{Servers: []string{f.addr}, Timeout: 10 * time.Second})
	r, err := c.Lookup(context.Background(), "big.example.", dnsmessage.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Addrs) != 1 || r.Addrs[0] != f.answerA || r.TTL != 7 {
		t.Fatalf("got %+v, want %v with TTL 7", r, f.answerA)
	}
	if len(f.udp) != 1 || len(f.tcp) != 1 {
		t.Fatalf("%d UDP and %d TCP queries, want one of each", len(f.udp), len(f.tcp))
	}
}

func TestForgedIDIgnored(t *testing.T) {
	f := &fakeServer{answerA: netip.MustParseAddr("192.0.2.8"), forgeUDP: true}
	startFake(t, f)
	c := New(Config{Servers: []string{f.addr}, Timeout: 10 * time.Second})
	r, err := c.Lookup(context.Background(), "x.example.", dnsmessage.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Addrs) != 1 || r.Addrs[0] != f.answerA {
		t.Fatalf("got %+v", r)
	}
	if len(f.tcp) != 0 {
		t.Fatal("went to TCP for an untruncated answer")
	}
}

// deadServer is a UDP port that takes queries and never answers.
func deadServer(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestDeadServerTimesOut(t *testing.T) {
	dead := deadServer(t)
	c := New(Config{Servers: []string{dead}, Timeout: 200 * time.Millisecond, Attempts: 2})
	done := make(chan error, 1)
	go func() {
		_, err := c.Lookup(context.Background(), "x.example.", dnsmessage.TypeA)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "x.example.") {
			t.Fatalf("err = %v, want a timeout naming the server and the name", err)
		}
	case <-time.After(testdeps.WaitTimeout):
		t.Fatal("the lookup hangs on a server that does not answer")
	}
}

func TestNextServerAfterDeadOne(t *testing.T) {
	f := &fakeServer{answerA: netip.MustParseAddr("192.0.2.9")}
	startFake(t, f)
	c := New(Config{Servers: []string{deadServer(t), f.addr}, Timeout: 200 * time.Millisecond})
	r, err := c.Lookup(context.Background(), "x.example.", dnsmessage.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Addrs[0] != f.answerA {
		t.Fatalf("got %v", r.Addrs)
	}
}

func TestContextEndsLookup(t *testing.T) {
	c := New(Config{Servers: []string{deadServer(t)}, Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Lookup(ctx, "x.example.", dnsmessage.TypeA)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error after cancel")
		}
	case <-time.After(testdeps.WaitTimeout):
		t.Fatal("the lookup ignores its context")
	}
}

// TestDnsmasq checks the client against a real server: records, TTL,
// search list, NXDOMAIN, NODATA, REFUSED and SRV with additional records.
func TestDnsmasq(t *testing.T) {
	d := testdeps.StartDnsmasq(t, "192.0.2.1 a.test\n192.0.2.2 a.test\n::1 six.test\n192.0.2.3 t1.test\n",
		"srv-host=_redis._tcp.svc.test,t1.test,6379,0,5\nsrv-host=_redis._tcp.svc.test,t2.test,6380,1,0\ncname=alias.test,a.test,2\n", 3)
	c := New(Config{Servers: []string{d.Addr()}, Search: []string{"test."}, Ndots: 1, Timeout: 10 * time.Second})
	ctx := context.Background()

	r, err := c.Lookup(ctx, "a", dnsmessage.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(r.Addrs, netip.Addr.Compare)
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}; !slices.Equal(r.Addrs, want) || r.TTL != 3 || r.Name != "a.test." {
		t.Errorf("a: got %+v, want %v TTL 3 from a.test.", r, want)
	}
	r, err = c.Lookup(ctx, "alias.test", dnsmessage.TypeA)
	if err != nil || len(r.Addrs) != 2 || r.Name != "a.test." || r.TTL != 2 {
		t.Errorf("alias.test (CNAME a.test, TTL 2): %+v, %v; want a.test's addresses with the CNAME's TTL", r, err)
	}
	r, err = c.Lookup(ctx, "six.test", dnsmessage.TypeAAAA)
	if err != nil || len(r.Addrs) != 1 || r.Addrs[0] != netip.IPv6Loopback() {
		t.Errorf("six.test AAAA: %+v, %v", r, err)
	}
	_, err = c.Lookup(ctx, "nope.test", dnsmessage.TypeA)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope.test.") || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("nope.test: err = %v, want NXDOMAIN naming nope.test.", err)
	}
	_, err = c.Lookup(ctx, "a.test", dnsmessage.TypeAAAA)
	if !errors.Is(err, ErrNoRecords) {
		t.Errorf("a.test AAAA: err = %v, want ErrNoRecords", err)
	}
	_, err = c.Lookup(ctx, "elsewhere.example.", dnsmessage.TypeA)
	if !errors.Is(err, ErrRefused) || IsNotFound(err) {
		t.Errorf("elsewhere.example: err = %v, want REFUSED", err)
	}
	r, err = c.Lookup(ctx, "_redis._tcp.svc.test", dnsmessage.TypeSRV)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(r.SRV, func(a, b SRV) int { return strings.Compare(a.Target, b.Target) })
	if want := []SRV{{"t1.test.", 6379, 0, 5}, {"t2.test.", 6380, 1, 0}}; !slices.Equal(r.SRV, want) {
		t.Errorf("SRV: %+v, want %+v", r.SRV, want)
	}
	if h := r.Additional["t1.test."]; len(h.Addrs) != 1 || h.Addrs[0] != netip.MustParseAddr("192.0.2.3") {
		t.Errorf("additional for t1.test.: %+v (all: %+v)", h, r.Additional)
	}
}
