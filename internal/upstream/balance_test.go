package upstream

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/podkit/podkit/discovery"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		err  string
	}{
		{"", RoundRobin, ""},
		{"round-robin", RoundRobin, ""},
		{"least-request", LeastRequest, ""},
		{"p2c", P2C, ""},
		{"ring-hash", RingHash, ""},
		{"random", "", `unknown balancing policy "random"`},
		{"Round-Robin", "", "want one of round-robin, least-request, p2c, ring-hash"},
	} {
		got, err := ParsePolicy(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePolicy(%q) = %v, want error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestHashKey(t *testing.T) {
	long := []byte(strings.Repeat("0123456789abcdef", 5)[:70])
	for _, tc := range []struct {
		in   []byte
		want uint64
	}{
		// Reference values of XXH64 with seed 0.
		{nil, 0xef46db3751d8e999},
		{[]byte("a"), 0xd24ec4f1a98c6e5b},
		{[]byte("abc"), 0x44bc2cf5ad770999},
		{long, 0x72daa913aa8eede1},
	} {
		if got := HashKey(tc.in); got != tc.want {
			t.Errorf("HashKey(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
		if got := HashString(string(tc.in)); got != tc.want {
			t.Errorf("HashString(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{Policy: "fastest", Limits: Limits{MaxConnections: -1}, Outlier: OutlierConfig{MaxPercent: 101}, Check: CheckConfig{Interval: -1}}
	err := cfg.Validate()
	for _, want := range []string{`unknown balancing policy "fastest"`, "max connections -1 is negative", "outlier max percent 101", "health check interval -1ns is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, want)
		}
	}
	if _, err := New(cfg, staticWatch(t, "static:127.0.0.1:1")); err == nil {
		t.Error("New accepted an invalid config")
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New accepted a nil watch")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero Config is invalid: %v", err)
	}
}

// within reports whether got is within tol (a fraction) of want.
func within(got int, want float64, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*want
}

func TestWeightsHonored(t *testing.T) {
	const n = 12000
	w := staticWatch(t, "static:127.0.0.1:1001;weight=1,127.0.0.1:1002;weight=2,127.0.0.1:1003;weight=3")
	for _, tc := range []struct {
		policy Policy
		tol    float64
		hint   func(i int) Hint
	}{
		// Round robin is exact over whole cycles; least-request with
		// nothing in flight follows the round robin order.
		{RoundRobin, 0, nil},
		{LeastRequest, 0, nil},
		{P2C, 0.1, nil},
		{RingHash, 0.2, func(i int) Hint {
			return Hint{Key: HashString("client-" + strconv.Itoa(i)), HasKey: true}
		}},
		{RingHash, 0, nil}, // no key: round robin
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			p := newPool(t, Config{Policy: tc.policy}, w)
			got := picks(t, p, n, tc.hint)
			for i, port := range []int{1001, 1002, 1003} {
				want := float64(n) * float64(i+1) / 6
				if !within(got[addr(port)], want, tc.tol) {
					t.Errorf("%s: %d picks of %s, want %.0f ±%.0f%% (all: %v)", tc.policy, got[addr(port)], addr(port), want, tc.tol*100, got)
				}
			}
		})
	}
}

func TestRoundRobinIsSmooth(t *testing.T) {
	// nginx's smooth weighted round robin spreads a heavy endpoint's turns:
	// weights 5,1,1 give a a b a c a a in every cycle.
	w := pushWatch(t, ep(1, 5, 0, ""), ep(2, 1, 0, ""), ep(3, 1, 0, ""))
	p := newPool(t, Config{}, w)
	var seq []string
	for range 14 {
		e, err := p.Acquire(Hint{})
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, e.Addr()[len("127.0.0.1:"):])
		p.Release(e, Conn, OK)
	}
	if s := strings.Join(seq, ""); s != "11213111121311" {
		t.Errorf("sequence %s, want 1121311 twice", s)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	for _, policy := range []Policy{LeastRequest, P2C} {
		t.Run(string(policy), func(t *testing.T) {
			w := pushWatch(t, ep(1, 1, 0, ""), ep(2, 1, 0, ""))
			p := newPool(t, Config{Policy: policy}, w)
			// Load endpoint 1 with many in flight: Tried keeps 2 out.
			var two *Endpoint
			for two == nil {
				e, err := p.Acquire(Hint{})
				if err != nil {
					t.Fatal(err)
				}
				if e.Addr() == addr(2) {
					two = e
				}
				p.Release(e, Conn, OK)
			}
			var held []*Endpoint
			for range 10 {
				e, err := p.Acquire(Hint{Tried: []*Endpoint{two}})
				if err != nil || e.Addr() != addr(1) {
					t.Fatalf("Acquire avoiding endpoint 2 = %v, %v", e, err)
				}
				held = append(held, e)
			}
			// With 10 in flight on 1 and none on 2, p2c and least-request
			// pick 2 whenever both are drawn: least-request always, p2c
			// whenever its two choices differ (at least 3/4 of the time).
			got := picks(t, p, 400, nil)
			if policy == LeastRequest && got[addr(1)] != 0 {
				t.Errorf("least-request picked the loaded endpoint %d times", got[addr(1)])
			}
			if got[addr(2)] < 300 {
				t.Errorf("%s: idle endpoint picked %d of 400 times", policy, got[addr(2)])
			}
			for _, e := range held {
				p.Release(e, Conn, OK)
			}
		})
	}
}

// ringMap maps keys to endpoints.
func ringMap(t *testing.T, p *Pool, keys int) []string {
	t.Helper()
	out := make([]string, keys)
	for i := range keys {
		h := Hint{Key: HashString("key-" + strconv.Itoa(i)), HasKey: true}
		e, err := p.Acquire(h)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e.Addr()
		p.Release(e, Conn, ClientGone)
	}
	return out
}

func TestRingHashStability(t *testing.T) {
	const keys = 20000
	eps := []discovery.Endpoint{ep(1, 1, 0, ""), ep(2, 1, 0, ""), ep(3, 1, 0, ""), ep(4, 1, 0, ""), ep(5, 1, 0, "")}
	w := pushWatch(t, eps...)
	p := newPool(t, Config{Policy: RingHash, Outlier: OutlierConfig{ConsecutiveFailures: 1, BaseEjection: 1 << 40}}, w)
	before := ringMap(t, p, keys)
	if again := ringMap(t, p, keys); strings.Join(again, ",") != strings.Join(before, ",") {
		t.Fatal("the same keys map differently on an unchanged ring")
	}

	// Eject endpoint 3: its keys go elsewhere, no other key moves.
	for {
		e, err := p.Acquire(Hint{}) // no key: round robin
		if err != nil {
			t.Fatal(err)
		}
		if e.Addr() == addr(3) {
			p.Release(e, Conn, ConnectFailed)
			break
		}
		p.Release(e, Conn, OK)
	}
	if !status(p, addr(3)).Ejected {
		t.Fatal("endpoint 3 not ejected after a failure with ConsecutiveFailures 1")
	}
	after := ringMap(t, p, keys)
	moved := 0
	for i := range keys {
		switch {
		case before[i] == addr(3):
			if after[i] == addr(3) {
				t.Fatalf("key %d still maps to the ejected endpoint", i)
			}
			moved++
		case after[i] != before[i]:
			t.Fatalf("key %d moved from healthy %s to %s when another endpoint was ejected", i, before[i], after[i])
		}
	}
	if !within(moved, keys/5, 0.35) {
		t.Errorf("%d keys were on the ejected endpoint, want about %d", moved, keys/5)
	}

	// Add endpoint 6, on a second pool without the ejection: about 1/6 of
	// the keys move, all of them to the new endpoint.
	p2 := newPool(t, Config{Policy: RingHash}, w)
	run(t, p2)
	base := ringMap(t, p2, keys)
	w.Update(discovery.Set{Endpoints: append(eps, ep(6, 1, 0, ""))})
	testWaitUsable(t, p2, 6)
	grown := ringMap(t, p2, keys)
	moved = 0
	for i := range keys {
		if grown[i] != base[i] {
			if grown[i] != addr(6) {
				t.Fatalf("key %d moved from %s to %s, not to the new endpoint", i, base[i], grown[i])
			}
			moved++
		}
	}
	if !within(moved, keys/6, 0.35) {
		t.Errorf("%d of %d keys moved when a 6th endpoint came, want about 1/6 (%d)", moved, keys, keys/6)
	}
}

func TestPriorityAndZone(t *testing.T) {
	bad := newFlaky()
	w := pushWatch(t,
		ep(1, 1, 0, "a"), ep(2, 1, 0, "b"), ep(3, 1, 0, "a"),
		ep(4, 1, 1, "a"), ep(5, 1, 1, "b"))
	p := newPool(t, Config{Zone: "a", Check: CheckConfig{Checker: bad, Interval: 10e6, Rise: 1, Fall: 1}}, w)
	run(t, p)
	set := func(got map[string]int) string {
		var s []string
		for _, port := range []int{1, 2, 3, 4, 5} {
			if got[addr(port)] > 0 {
				s = append(s, strconv.Itoa(port))
			}
		}
		return strings.Join(s, "")
	}
	for _, step := range []struct {
		down []int
		want string
	}{
		{nil, "13"},           // priority 0, own zone a
		{[]int{1}, "3"},       // one left in zone a
		{[]int{1, 3}, "2"},    // zone a empty in priority 0: the rest of the group
		{[]int{1, 2, 3}, "4"}, // priority 0 gone: priority 1, zone a
		{[]int{1, 2, 3, 4}, "5"},
		{[]int{2}, "13"},
	} {
		bad.set(step.down...)
		testWaitUsable(t, p, 5-len(step.down))
		if got := set(picks(t, p, 60, nil)); got != step.want {
			t.Errorf("endpoints %v down: picked %s, want %s", step.down, got, step.want)
		}
	}
}

func TestTried(t *testing.T) {
	for _, policy := range Policies {
		t.Run(string(policy), func(t *testing.T) {
			w := pushWatch(t, ep(1, 1, 0, ""), ep(2, 1, 0, ""), ep(3, 1, 1, ""))
			p := newPool(t, Config{Policy: policy}, w)
			h := Hint{Key: 42, HasKey: true}
			seen := map[string]bool{}
			for range 3 {
				e, err := p.Acquire(h)
				if err != nil {
					t.Fatal(err)
				}
				if seen[e.Addr()] {
					t.Fatalf("picked %s again although tried (tried %v)", e.Addr(), h.Tried)
				}
				seen[e.Addr()] = true
				h.Tried = append(h.Tried, e)
				p.Release(e, Conn, ConnectFailed)
			}
			// Every usable endpoint tried (the backup group too): a tried one.
			e, err := p.Acquire(h)
			if err != nil || e == nil {
				t.Fatalf("Acquire with everything tried = %v, %v", e, err)
			}
			p.Release(e, Conn, OK)
		})
	}
}

func TestNoEndpoint(t *testing.T) {
	m := NewMetrics("test")
	w := pushWatch(t)
	p := newPool(t, Config{Name: "redis", Metrics: m, Outlier: OutlierConfig{ConsecutiveFailures: 1, MaxPercent: 100, BaseEjection: 1 << 40}}, w)
	run(t, p)
	check := func(want string) {
		t.Helper()
		_, err := p.Acquire(Hint{})
		if !errors.Is(err, ErrNoEndpoint) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"redis"`) {
			t.Errorf("Acquire = %v, want ErrNoEndpoint naming redis and %q", err, want)
		}
		if p.Usable() != 0 || p.Err() == nil {
			t.Errorf("Usable() = %d, Err() = %v", p.Usable(), p.Err())
		}
	}
	check("no endpoints discovered")
	w.Update(discovery.Set{Endpoints: []discovery.Endpoint{{Host: "127.0.0.1", Port: 1, Weight: 1}}})
	testdeps.WaitFor(t, "the unready endpoint", func() bool { return len(p.Snapshot()) == 1 })
	check("none of 1 discovered endpoints is ready or serving")
	w.Update(discovery.Set{Endpoints: []discovery.Endpoint{ep(1, 1, 0, ""), ep(2, 1, 0, "")}})
	testWaitUsable(t, p, 2)
	if p.Usable() != 2 || p.Err() != nil {
		t.Fatalf("Usable() = %d, Err() = %v", p.Usable(), p.Err())
	}
	for range 2 {
		e, err := p.Acquire(Hint{})
		if err != nil {
			t.Fatal(err)
		}
		p.Release(e, Conn, ConnectFailed)
	}
	check("all 2 endpoints ejected")
	if v, _ := gather(t, m, "podkit_test_upstream_no_endpoint_total", map[string]string{"upstream": "redis"}); v != 3 {
		t.Errorf("no_endpoint_total = %v, want 3", v)
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"", "round-robin", "p2c", "ring-hash", "least-request", "rr", "RING-HASH", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			if p != "" || !strings.Contains(err.Error(), "unknown balancing policy") {
				t.Errorf("ParsePolicy(%q) = %q, %v", s, p, err)
			}
			return
		}
		if s != "" && string(p) != s {
			t.Errorf("ParsePolicy(%q) = %q", s, p)
		}
		if again, err := ParsePolicy(string(p)); err != nil || again != p {
			t.Errorf("%q does not parse back: %v", p, err)
		}
	})
}
