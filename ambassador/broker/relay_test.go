package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// relayed is a relayTCP under test: user is the client's far end,
// server the endpoint's.
type relayed struct {
	user, server *net.TCPConn
	client       net.Conn // the key of abortRelay
	done         chan struct{}
}

// relayPairFor connects user ↔ client and back ↔ server over loopback
// and relays client ↔ back. sockBuf > 0 sets every socket buffer to it.
func relayPairFor(t testing.TB, idle time.Duration, sockBuf int) *relayed {
	t.Helper()
	accept := func(ln net.Listener) (*net.TCPConn, *net.TCPConn) {
		t.Helper()
		ch := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				ch <- nil
				return
			}
			ch <- c
		}()
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a := <-ch
		if a == nil {
			t.Fatal("accept failed")
		}
		return d.(*net.TCPConn), a.(*net.TCPConn)
	}
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln1.Close()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	user, client := accept(ln1)
	back, server := accept(ln2)
	if sockBuf > 0 {
		for _, c := range []*net.TCPConn{user, client, back, server} {
			c.SetReadBuffer(sockBuf)
			c.SetWriteBuffer(sockBuf)
		}
	}
	r := &relayed{user: user, server: server, client: client, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		relayTCP(client, back, idle)
	}()
	t.Cleanup(func() {
		user.Close()
		server.Close()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("relayTCP did not return after both ends closed")
		}
	})
	return r
}

// ended reports whether the relay returned.
func (r *relayed) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// sendHashed writes n random bytes to w and returns their hash.
func sendHashed(w io.Writer, n int) ([32]byte, error) {
	h := sha256.New()
	buf := make([]byte, 100_003) // odd size: writes straddle the relay's buffers
	for n > 0 {
		k := min(n, len(buf))
		rand.Read(buf[:k])
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return [32]byte{}, err
		}
		n -= k
	}
	return [32]byte(h.Sum(nil)), nil
}

// readHashed reads r to its end and returns the hash and the count.
func readHashed(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return [32]byte(h.Sum(nil)), n, err
}

func TestRelayLargeBothWays(t *testing.T) {
	const size = 24 << 20
	r := relayPairFor(t, time.Minute, 0)
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	var wg sync.WaitGroup
	var upSum, downSum [32]byte
	var upErr, downErr error
	var gotUp, gotDown result
	wg.Add(4)
	go func() { defer wg.Done(); upSum, upErr = sendHashed(r.user, size); r.user.CloseWrite() }()
	go func() { defer wg.Done(); downSum, downErr = sendHashed(r.server, size); r.server.CloseWrite() }()
	go func() { defer wg.Done(); s, n, err := readHashed(r.server); gotUp = result{s, n, err} }()
	go func() { defer wg.Done(); s, n, err := readHashed(r.user); gotDown = result{s, n, err} }()
	wg.Wait()
	if upErr != nil || downErr != nil {
		t.Fatalf("write: up %v, down %v", upErr, downErr)
	}
	if gotUp.err != nil || gotUp.n != size || gotUp.sum != upSum {
		t.Errorf("client → endpoint: got %d bytes (err %v), hash match %v; want %d", gotUp.n, gotUp.err, gotUp.sum == upSum, size)
	}
	if gotDown.err != nil || gotDown.n != size || gotDown.sum != downSum {
		t.Errorf("endpoint → client: got %d bytes (err %v), hash match %v; want %d", gotDown.n, gotDown.err, gotDown.sum == downSum, size)
	}
	testdeps.WaitFor(t, "the relay to end once both directions ended", r.ended)
}

// TestRelayHalfClose: a side that ends its output still gets the other
// side's bytes, in either direction.
func TestRelayHalfClose(t *testing.T) {
	for _, clientFirst := range []bool{true, false} {
		name := "client-closes-first"
		if !clientFirst {
			name = "endpoint-closes-first"
		}
		t.Run(name, func(t *testing.T) {
			r := relayPairFor(t, time.Minute, 0)
			first, second := r.user, r.server
			if !clientFirst {
				first, second = r.server, r.user
			}
			const req, reply = "request: all of it, then EOF", "reply after the EOF"
			if _, err := first.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			if err := first.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			second.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(second) // ends with the passed-on EOF
			if err != nil || string(got) != req {
				t.Fatalf("the far side read %q, %v; want %q then EOF", got, err, req)
			}
			if _, err := second.Write([]byte(reply)); err != nil {
				t.Fatalf("writing the reply after the EOF: %v", err)
			}
			second.CloseWrite()
			first.SetReadDeadline(time.Now().Add(30 * time.Second))
			got, err = io.ReadAll(first)
			if err != nil || string(got) != reply {
				t.Fatalf("the side that closed first read %q, %v; want %q then EOF", got, err, reply)
			}
			testdeps.WaitFor(t, "the relay to end", r.ended)
		})
	}
}

// TestRelayBackPressure: an endpoint that does not read stops the
// client's writes after what the sockets and one relay buffer hold; then
// it reads everything, intact.
func TestRelayBackPressure(t *testing.T) {
	const sockBuf = 64 << 10
	const size = 32 << 20
	r := relayPairFor(t, time.Minute, sockBuf)
	var written atomic.Int64
	sum := make(chan [32]byte, 1)
	go func() {
		s, _ := sendHashed(writerFunc(func(p []byte) (int, error) {
			n, err := r.user.Write(p)
			written.Add(int64(n))
			return n, err
		}), size)
		r.user.CloseWrite()
		sum <- s
	}()
	// Wait until the writes stall: no progress over a few checks.
	var last int64 = -1
	stable := 0
	testdeps.WaitFor(t, "the client's writes to stall", func() bool {
		time.Sleep(100 * time.Millisecond)
		n := written.Load()
		if n == last && n > 0 {
			stable++
		} else {
			stable = 0
		}
		last = n
		return stable >= 5
	})
	// Four sockets of sockBuf (which the kernel doubles, and may round
	// up) plus one relay buffer: far below what was to be sent.
	bound := int64(4*4*sockBuf + relayBuf)
	if n := written.Load(); n > bound {
		t.Fatalf("the client wrote %d bytes to an endpoint that reads nothing; want at most %d (the relay buffers without bound)", n, bound)
	}
	checkHeld(t, r.client)
	got, n, err := readHashed(r.server)
	if want := <-sum; err != nil || n != size || got != want {
		t.Fatalf("the endpoint read %d bytes (err %v), hash match %v; want %d", n, err, got == want, size)
	}
}

// checkHeld: the relay holds at most one buffer per direction.
func checkHeld(t *testing.T, client net.Conn) {
	t.Helper()
	held, ok := relayHeld(client)
	if !ok {
		return // the relay holds nothing of its own here
	}
	for i, n := range held {
		if n > relayBuf {
			t.Errorf("direction %d holds %d bytes, more than its buffer (%d)", i, n, relayBuf)
		}
	}
	if held[0] == 0 {
		t.Errorf("the client → endpoint direction holds nothing while the endpoint reads nothing; the test saw no back-pressure")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRelayIdle: a silent pair is closed after its idle time; one that
// carries a byte now and then is not. The busy pair sends every idle/30,
// so only a stall of the whole process for seconds could make it look
// idle.
func TestRelayIdle(t *testing.T) {
	t.Parallel()
	const idle = 3 * time.Second
	silent := relayPairFor(t, idle, 0)
	busy := relayPairFor(t, idle, 0)

	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		tk := time.NewTicker(idle / 30)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := busy.user.Write([]byte{'.'}); err != nil {
					return
				}
			}
		}
	}()
	testdeps.WaitFor(t, "the silent pair to be closed", silent.ended)
	silent.user.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := silent.user.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a closed pair, want EOF", n)
	}
	// The busy pair outlives the silent one by two idle times.
	time.Sleep(2 * idle)
	close(stop)
	<-pinged
	if busy.ended() {
		t.Fatal("a pair that carried bytes every idle/30 was closed as idle")
	}
	busy.server.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got int
	buf := make([]byte, 64)
	for got == 0 {
		n, err := busy.server.Read(buf)
		if err != nil {
			t.Fatalf("the busy pair's endpoint: %v", err)
		}
		got += n
	}
}

// TestRelayAbort: abortRelay (with the client's Close, as closeConns
// does) ends a relay that would go on.
func TestRelayAbort(t *testing.T) {
	rs := []*relayed{relayPairFor(t, time.Hour, 0), relayPairFor(t, time.Hour, 0), relayPairFor(t, time.Hour, 0)}
	// One carries bytes when aborted.
	go sendHashed(rs[0].user, 8<<20)
	go io.Copy(io.Discard, rs[0].server)
	for _, r := range rs {
		r.client.Close()
		abortRelay(r.client)
	}
	for _, r := range rs {
		testdeps.WaitFor(t, "the aborted relay to return", r.ended)
		r.server.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, r.server); err != nil && !errors.Is(err, net.ErrClosed) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the endpoint of an aborted relay stays open")
			}
		}
	}
}

// TestRelayMany: many pairs at once, each echoing its own bytes back
// intact.
func TestRelayMany(t *testing.T) {
	const pairs, size = 40, 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, pairs)
	for range pairs {
		r := relayPairFor(t, time.Minute, 0)
		wg.Add(1)
		go func() { io.Copy(r.server, r.server); r.server.CloseWrite() }()
		go func() {
			defer wg.Done()
			sum := make(chan [32]byte, 1)
			go func() { s, _ := sendHashed(r.user, size); r.user.CloseWrite(); sum <- s }()
			got, n, err := readHashed(r.user)
			if want := <-sum; err != nil || n != size || got != want {
				errs <- errors.New("an echo came back different")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
