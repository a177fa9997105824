package raft

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/podkit/podkit/election/backend"
	"github.com/podkit/podkit/election/electiontest"
)

func TestConformance(t *testing.T) {
	for _, durable := range []bool{false, true} {
		name := "memory"
		if durable {
			name = "data-dir"
		}
		t.Run(name, func(t *testing.T) {
			electiontest.Run(t, func(t *testing.T, ids []string) []backend.Backend {
				return cluster(t, ids, durable)
			})
		})
	}
}

// cluster returns raft backends for ids on loopback listeners.
func cluster(t *testing.T, ids []string, durable bool) []backend.Backend {
	t.Helper()
	lns := make([]net.Listener, len(ids))
	peers := make([]Peer, len(ids))
	for i, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers[i] = Peer{ID: id, Addr: ln.Addr().String()}
	}
	bs := make([]backend.Backend, len(ids))
	for i := range ids {
		cfg := DefaultConfig()
		cfg.Peers = peers
		cfg.Listener = lns[i]
		if durable {
			cfg.DataDir = t.TempDir()
		}
		b, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		bs[i] = b
	}
	return bs
}

func TestSingleReplica(t *testing.T) {
	electiontestSingle(t)
}

// TestSingleReplicaElectsAtOnce: a lone replica does not wait out a long
// heartbeat timeout (here an hour) before it elects itself.
func TestSingleReplicaElectsAtOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Hour, time.Hour, time.Hour
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hist := &electiontest.History{}
	n := electiontest.Start(t, hist, "solo", b)
	if leader, _ := electiontest.Agree(t, []*electiontest.Node{n}, 0); leader != n {
		t.Fatalf("leader %v", leader)
	}
}

func electiontestSingle(t *testing.T) {
	b, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	hist := &electiontest.History{}
	n := electiontest.Start(t, hist, "solo", b)
	leader, epoch := electiontest.Agree(t, []*electiontest.Node{n}, 0)
	if leader != n {
		t.Fatalf("leader %v", leader)
	}
	if epoch < 1_600_000_000_000 {
		t.Errorf("a fresh in-memory replica's epoch %d does not start at the wall clock in ms", epoch)
	}
}

func TestParsePeers(t *testing.T) {
	tests := []struct {
		in      string
		want    []Peer
		wantErr string
	}{
		{in: "", want: nil},
		{in: "a=127.0.0.1:7000", want: []Peer{{"a", "127.0.0.1:7000"}}},
		{in: " a=h1:1 , b=h2:2,c=[::1]:3", want: []Peer{{"a", "h1:1"}, {"b", "h2:2"}, {"c", "[::1]:3"}}},
		{in: "a=h1:1,", wantErr: "entry 2 is empty"},
		{in: "a", wantErr: `entry 1 "a": want id=host:port`},
		{in: "=h:1", wantErr: "empty id"},
		{in: "a=h", wantErr: "is not host:port"},
		{in: "a=:7000", wantErr: "is not host:port"},
		{in: "a=h:x", wantErr: `port "x"`},
		{in: "a=h:70000", wantErr: `port "70000"`},
		{in: "a=h:0", wantErr: `port "0"`},
		{in: "a=h:1,a=h:2", wantErr: `id "a" appears twice`},
		{in: "a=h:1,b=h:1", wantErr: `address "h:1" appears twice`},
		{in: "a b=h:1", wantErr: "space or quote"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePeers(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePeers(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePeers(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func FuzzParsePeers(f *testing.F) {
	for _, s := range []string{"a=127.0.0.1:7000", "a=h:1,b=h:2", "a", "=:", "a=[::1]:1,", "x=y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		peers, err := ParsePeers(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range peers {
			if p.ID == "" || seen[p.ID] {
				t.Fatalf("ParsePeers(%q) accepted %v", s, peers)
			}
			seen[p.ID] = true
			if _, _, err := net.SplitHostPort(p.Addr); err != nil {
				t.Fatalf("ParsePeers(%q) accepted address %q", s, p.Addr)
			}
		}
	})
}

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.journal")
	s, err := openFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		if err := s.StoreLog(&hraft.Log{Index: i, Term: 1, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A torn record at the tail (a crash mid-write) is cut off.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 50, 1, 2, 3})
	f.Close()

	s, err = openFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(s *fileStore) {
		t.Helper()
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first != 4 || last != 10 {
			t.Errorf("first, last = %d, %d; want 4, 10", first, last)
		}
		var l hraft.Log
		if err := s.GetLog(2, &l); err != hraft.ErrLogNotFound {
			t.Errorf("GetLog(2) = %v, want ErrLogNotFound", err)
		}
		if err := s.GetLog(7, &l); err != nil || l.Data[0] != 7 {
			t.Errorf("GetLog(7) = %v, %v", l, err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
			t.Errorf("CurrentTerm = %d, %v", v, err)
		}
		if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
			t.Errorf("Get(missing) = %v, want \"not found\"", err)
		}
	}
	check(s)
	// Writes after the cut land on a clean tail, and compaction keeps the
	// live state.
	for i := 0; i < compactAfter+10; i++ {
		if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	s.Close()
	s, err = openFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	check(s)
	if s.records >= compactAfter {
		t.Errorf("journal holds %d records after compaction", s.records)
	}
}
