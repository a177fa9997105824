// Package raft is podkit elect's embedded backend: the elector replicas
// elect one of themselves with hashicorp/raft, so no outside service is
// needed. With no peers a single replica elects itself at once.
//
// The epoch is the raft term of the leader. A leader claims leadership only
// after it has committed a record of itself (ID, advertised address) in its
// own term, and other replicas report it only once that record is committed
// and their own term matches, so every replica agrees on (leader, address,
// epoch). A leader's claim lasts while a quorum confirms it (VerifyLeader),
// plus the leader lease; a replica paused or cut off stops claiming within
// that lease, and raft's election safety guarantees no other leader holds
// the same term.
//
// The timeouts (2s by default) are long enough that replicas starved of
// CPU keep their leader; pre-vote keeps a replica that missed heartbeats
// from disturbing it. A leader whose process is gone is replaced at once
// all the same: a follower that hears nothing for a moment dials the
// leader's raft port, and a refused connection starts an election without
// waiting out the heartbeat timeout (see crashDetector).
//
// State (term, vote, log) lives in a journal file in DataDir, fsync'd. With
// no DataDir it is kept in memory, and a fresh start begins its term at the
// current Unix time in milliseconds, so that epochs still increase across
// restarts of a replica that lost its state.
package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"

	"github.com/podkit/podkit/election/backend"
)

// Peer is one replica of the raft group.
type Peer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // host:port of its raft transport
}

// Config configures the raft backend.
type Config struct {
	// Peers are every replica, this one included; empty means a single
	// replica that elects itself.
	Peers []Peer `json:"peers"`
	// Listen is where this replica's raft transport listens; "" means the
	// port of this replica's own Peers entry, on that host if it is an IP
	// address, otherwise on every interface.
	Listen string `json:"listen"`
	// Listener, if set, is used as the transport's listener instead of
	// listening on Listen (for programs and tests that hold the port).
	Listener net.Listener `json:"-"`
	// DataDir keeps raft's term, vote and log; "" keeps them in memory.
	DataDir string `json:"data_dir"`
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are raft's
	// timings (defaults 2s each). A follower starts an election after
	// HeartbeatTimeout without word from the leader (raft sends a heartbeat
	// every tenth of it), a leader steps down after LeaderLeaseTimeout
	// without a quorum, and a claim lasts LeaderLeaseTimeout past its last
	// confirmation. They are sized to ride out replicas starved of CPU for
	// up to two seconds; a leader whose process is gone is replaced within
	// a fraction of a second, see crashDetector.
	HeartbeatTimeout   time.Duration `json:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `json:"election_timeout"`
	LeaderLeaseTimeout time.Duration `json:"leader_lease_timeout"`
	// Logger receives raft's warnings (nil: slog.Default()).
	Logger *slog.Logger `json:"-"`
}

// singleTimeout bounds raft's timeouts for a single replica, which elects
// itself after one heartbeat timeout.
const singleTimeout = 100 * time.Millisecond

// DefaultConfig returns the default timings and a single replica.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   2 * time.Second,
		ElectionTimeout:    2 * time.Second,
		LeaderLeaseTimeout: 2 * time.Second,
	}
}

// ParsePeers parses "id1=host:port,id2=host:port,...". Every entry needs an
// ID and a host:port; IDs and addresses must be unique.
func ParsePeers(s string) ([]Peer, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var peers []Peer
	ids, addrs := map[string]bool{}, map[string]bool{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, addr, ok := strings.Cut(part, "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		switch {
		case part == "":
			return nil, fmt.Errorf("entry %d is empty", i+1)
		case !ok:
			return nil, fmt.Errorf("entry %d %q: want id=host:port", i+1, part)
		case id == "":
			return nil, fmt.Errorf("entry %d %q: empty id", i+1, part)
		case strings.ContainsAny(id, " \t\"'"):
			return nil, fmt.Errorf("entry %d %q: id %q has a space or quote", i+1, part, id)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("entry %d %q: address %q is not host:port", i+1, part, addr)
		}
		if p, err := parsePort(port); err != nil || p == 0 {
			return nil, fmt.Errorf("entry %d %q: port %q is not a number from 1 to 65535", i+1, part, port)
		}
		if ids[id] {
			return nil, fmt.Errorf("entry %d: id %q appears twice", i+1, id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("entry %d: address %q appears twice", i+1, addr)
		}
		ids[id], addrs[addr] = true, true
		peers = append(peers, Peer{ID: id, Addr: addr})
	}
	return peers, nil
}

func parsePort(s string) (int, error) {
	n := 0
	if s == "" || len(s) > 5 {
		return 0, errors.New("bad port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad port")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errors.New("bad port")
	}
	return n, nil
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.HeartbeatTimeout < 5*time.Millisecond {
		errs = append(errs, fmt.Errorf("heartbeat timeout %s: at least 5ms", c.HeartbeatTimeout))
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("election timeout %s: at least the heartbeat timeout %s", c.ElectionTimeout, c.HeartbeatTimeout))
	}
	if c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease timeout %s: from 5ms to the heartbeat timeout %s", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen %q is not host:port", c.Listen))
		}
	}
	return errors.Join(errs...)
}

// Backend is the raft backend.
type Backend struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	raft *hraft.Raft
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and returns a backend; nothing starts until Campaign.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Backend{cfg: cfg, log: log}, nil
}

// claim is the record a new leader commits in its term.
type claim struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Term    uint64 `json:"term"` // filled in by the FSM from the log entry
}

// fsm keeps the latest committed claim.
type fsm struct {
	mu      sync.Mutex
	cur     claim
	changed chan struct{} // signalled on every apply
}

func (f *fsm) Apply(l *hraft.Log) any {
	var c claim
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return err
	}
	c.Term = l.Term
	f.mu.Lock()
	f.cur = c
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return nil
}

func (f *fsm) get() claim {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) { return snap(f.get()), nil }

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var c claim
	if err := json.NewDecoder(rc).Decode(&c); err != nil {
		return err
	}
	f.mu.Lock()
	f.cur = c
	f.mu.Unlock()
	return nil
}

type snap claim

func (s snap) Persist(sink hraft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(claim(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snap) Release() {}

// streamLayer is raft's TCP transport over a listener we own, dialing peers
// by name (DNS is resolved on each dial, so a pod's name works before it
// has an address).
type streamLayer struct {
	net.Listener
	adv tcpName
}

type tcpName string

func (a tcpName) Network() string { return "tcp" }
func (a tcpName) String() string  { return string(a) }

func (s *streamLayer) Addr() net.Addr { return s.adv }

func (s *streamLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// SetLogger replaces the logger given in Config (before Campaign).
func (b *Backend) SetLogger(l *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = l
}

// Campaign implements backend.Backend.
func (b *Backend) Campaign(ctx context.Context, c backend.Candidate, observe func(backend.Observation)) error {
	cfg := b.cfg
	b.mu.Lock()
	log := b.log
	b.mu.Unlock()
	var self *Peer
	for i := range cfg.Peers {
		if cfg.Peers[i].ID == c.ID {
			self = &cfg.Peers[i]
		}
	}
	if len(cfg.Peers) > 0 && self == nil {
		ids := make([]string, len(cfg.Peers))
		for i, p := range cfg.Peers {
			ids[i] = p.ID
		}
		return fmt.Errorf("raft: id %q is not among the peers (%s)", c.ID, strings.Join(ids, ", "))
	}

	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(c.ID)
	conf.HeartbeatTimeout = cfg.HeartbeatTimeout
	conf.ElectionTimeout = cfg.ElectionTimeout
	conf.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 64
	conf.TrailingLogs = 64
	conf.NoLegacyTelemetry = true
	level := hclog.Warn
	if log.Enabled(ctx, slog.LevelDebug) {
		level = hclog.Debug
	}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: level, Output: logWriter{log}, DisableTime: true})

	var (
		logs   hraft.LogStore
		stable hraft.StableStore
		snaps  hraft.SnapshotStore
		closer func()
	)
	if cfg.DataDir == "" {
		mem := hraft.NewInmemStore()
		logs, stable, snaps, closer = mem, mem, hraft.NewInmemSnapshotStore(), func() {}
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("raft: data dir: %w", err)
		}
		fs, err := openFileStore(filepath.Join(cfg.DataDir, "raft.journal"))
		if err != nil {
			return fmt.Errorf("raft: %w", err)
		}
		s, err := hraft.NewFileSnapshotStore(cfg.DataDir, 2, io.Discard)
		if err != nil {
			fs.Close()
			return fmt.Errorf("raft: snapshots: %w", err)
		}
		logs, stable, snaps, closer = fs, fs, s, func() { fs.Close() }
	}
	defer closer()

	var trans hraft.Transport
	var servers []hraft.Server
	var crash *crashDetector // nil for a single replica
	if len(cfg.Peers) == 0 {
		// Alone, nobody can compete or be starved with it: raft need not
		// wait out the long timeouts to elect this replica at start. (The
		// claim still lasts LeaderLeaseTimeout past each confirmation.)
		conf.HeartbeatTimeout = min(conf.HeartbeatTimeout, singleTimeout)
		conf.ElectionTimeout = min(conf.ElectionTimeout, singleTimeout)
		conf.LeaderLeaseTimeout = min(conf.LeaderLeaseTimeout, conf.HeartbeatTimeout)
		addr, t := hraft.NewInmemTransport(hraft.ServerAddress("local-" + c.ID))
		trans = t
		servers = []hraft.Server{{ID: conf.LocalID, Address: addr}}
	} else {
		listen := cfg.Listen
		if listen == "" {
			host, port, _ := net.SplitHostPort(self.Addr)
			if net.ParseIP(host) == nil {
				host = ""
			}
			listen = net.JoinHostPort(host, port)
		}
		ln := cfg.Listener
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", listen); err != nil {
				return fmt.Errorf("raft: transport: %w", err)
			}
		}
		nt := hraft.NewNetworkTransport(&streamLayer{Listener: ln, adv: tcpName(self.Addr)}, 3, time.Second, io.Discard)
		defer nt.Close()
		trans = nt
		crash = newCrashDetector(conf.LocalID, hraft.ServerAddress(dialAddr(ln)), cfg.Peers, nt, cfg.HeartbeatTimeout, cfg.ElectionTimeout, log)
		for _, p := range cfg.Peers {
			servers = append(servers, hraft.Server{ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.Addr)})
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	}

	existing, err := hraft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("raft: reading state: %w", err)
	}
	if !existing {
		if err := hraft.BootstrapCluster(conf, logs, stable, snaps, trans, hraft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("raft: bootstrap: %w", err)
		}
		// A fresh replica starts its term at the wall clock, so that its
		// epochs exceed any it may have used before losing its state.
		if err := stable.SetUint64([]byte("CurrentTerm"), uint64(time.Now().UnixMilli())); err != nil {
			return fmt.Errorf("raft: %w", err)
		}
	}

	f := &fsm{changed: make(chan struct{}, 1)}
	r, err := hraft.NewRaft(conf, f, logs, stable, snaps, trans)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	b.mu.Lock()
	b.raft = r
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.raft = nil
		b.mu.Unlock()
		if r.State() == hraft.Leader {
			if err := r.LeadershipTransfer().Error(); err != nil {
				log.Debug("raft: leadership transfer on stop", "error", err)
			}
		}
		r.Shutdown().Error()
	}()

	claimData, _ := json.Marshal(claim{ID: c.ID, Address: c.Address})
	var claimed uint64 // the term in which our claim committed
	// The leader renews its claim four times per lease; a follower looks
	// at raft's state once per heartbeat raft sends (a tenth of the
	// heartbeat timeout), and at least every 100ms, so that a crashed
	// leader is noticed soon.
	leaderTick, followerTick := cfg.LeaderLeaseTimeout/4, min(cfg.HeartbeatTimeout/10, 100*time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last backend.Observation
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-f.changed:
		case <-r.LeaderCh():
		}
		var o backend.Observation
		tick := followerTick
		if r.State() == hraft.Leader {
			tick = leaderTick
			term := r.CurrentTerm()
			if claimed != term {
				if err := r.Apply(claimData, cfg.ElectionTimeout).Error(); err == nil {
					if cur := f.get(); cur.ID == c.ID && cur.Term == term {
						claimed = term
					}
				}
			}
			start := time.Now()
			if claimed == term && r.VerifyLeader().Error() == nil && r.CurrentTerm() == term {
				o = backend.Observation{Leader: c.ID, Address: c.Address, Epoch: term, Expires: start.Add(cfg.LeaderLeaseTimeout)}
			}
		} else {
			_, id := r.LeaderWithID()
			cur := f.get()
			if id != "" && string(id) == cur.ID && cur.Term == r.CurrentTerm() && cur.ID != c.ID {
				o = backend.Observation{Leader: cur.ID, Address: cur.Address, Epoch: cur.Term, Expires: r.LastContact().Add(cfg.HeartbeatTimeout)}
			}
			if crash != nil {
				crash.step(r)
			}
		}
		if o != last || o.Leader != "" {
			observe(o)
			last = o
		}
		timer.Reset(tick)
	}
}

// Resign implements backend.Backend: raft's LeadershipTransfer to the most
// up-to-date follower.
func (b *Backend) Resign(ctx context.Context) error {
	b.mu.Lock()
	r := b.raft
	b.mu.Unlock()
	if r == nil || r.State() != hraft.Leader {
		return backend.ErrNotLeader
	}
	errc := make(chan error, 1)
	go func() { errc <- r.LeadershipTransfer().Error() }()
	select {
	case err := <-errc:
		if errors.Is(err, hraft.ErrNotLeader) {
			return backend.ErrNotLeader
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logWriter turns hclog's lines into slog records.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERROR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[INFO]"):
		level = slog.LevelInfo
	}
	if i := strings.Index(line, "]"); i >= 0 && strings.HasPrefix(line, "[") {
		line = strings.TrimSpace(line[i+1:])
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
