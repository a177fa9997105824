// Package etcd is podkit elect's etcd backend: go.etcd.io/etcd's
// concurrency.Election on a session lease. The epoch is the creation
// revision of the leader's key, which etcd makes strictly greater for every
// new key, so for every new leader.
//
// A leader claims leadership while its lease is kept alive: the claim
// expires one TTL after the last keep-alive answer, so a replica cut off
// from etcd stops claiming by the time etcd has let its key go. An etcd
// that cannot be reached is retried with backoff, and reported as an
// observation error; the replica never claims leadership meanwhile.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/podkit/podkit/election/backend"
	"github.com/podkit/podkit/internal/retry"
)

// Config configures the etcd backend.
type Config struct {
	Endpoints []string `json:"endpoints"`
	// CAFile, CertFile and KeyFile configure TLS (https endpoints).
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// Prefix is the election's key prefix (e.g. "/podkit/elect/NAME/").
	Prefix string `json:"prefix"`
	// TTL is the session lease: a crashed leader is replaced after it.
	// Whole seconds, at least 2s (etcd's minimum).
	TTL time.Duration `json:"ttl"`
	// DialTimeout bounds each connection attempt (default 2s).
	DialTimeout time.Duration `json:"dial_timeout"`
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("no endpoints"))
	}
	if c.Prefix == "" {
		errs = append(errs, errors.New("empty key prefix"))
	}
	if c.TTL < 2*time.Second {
		errs = append(errs, fmt.Errorf("TTL %s is below etcd's minimum of 2s", c.TTL))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("a client certificate needs both a cert and a key file"))
	}
	return errors.Join(errs...)
}

// Backend is the etcd backend.
type Backend struct {
	cfg Config
	tls *tls.Config

	mu     sync.Mutex
	elec   *concurrency.Election // while this replica leads
	resign chan struct{}         // tells the campaign to resign and run again
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg, loads its TLS files and returns a backend; nothing
// connects until Campaign.
func New(cfg Config) (*Backend, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	b := &Backend{cfg: cfg, resign: make(chan struct{}, 1)}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("CA file: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA file %s: no PEM certificate in it", cfg.CAFile)
			}
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("client certificate: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		b.tls = t
	}
	return b, nil
}

// value is what the leader key holds.
type value struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Campaign implements backend.Backend.
func (b *Backend) Campaign(ctx context.Context, c backend.Candidate, observe func(backend.Observation)) error {
	val, _ := json.Marshal(value{ID: c.ID, Address: c.Address})
	var mu sync.Mutex // serializes observe
	report := func(o backend.Observation) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			observe(o)
		}
	}
	backoff := retry.NewBackoff(sessionRetry)
	for ctx.Err() == nil {
		start := time.Now()
		err := b.session(ctx, c, string(val), report)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("session ended")
		}
		report(backend.Observation{Err: fmt.Errorf("etcd %s: %w", strings.Join(b.cfg.Endpoints, ","), err)})
		if time.Since(start) > 10*time.Second {
			backoff.Reset() // a session that lasted starts the delays over
		}
		d, _ := backoff.Next()
		if retry.Sleep(ctx, d) != nil {
			return nil
		}
	}
	return nil
}

// sessionRetry spaces the sessions after a failure: 200ms, doubling, at
// most 5s, with jitter so replicas that lost etcd together do not all
// come back at once.
var sessionRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// session runs one etcd session: a client, a lease kept alive, the
// campaign and the observation of the leader key, until any of them
// fails or ctx ends.
func (b *Backend) session(ctx context.Context, c backend.Candidate, val string, report func(backend.Observation)) error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            b.cfg.Endpoints,
		DialTimeout:          b.cfg.DialTimeout,
		DialKeepAliveTime:    b.cfg.TTL / 2,
		DialKeepAliveTimeout: b.cfg.DialTimeout,
		TLS:                  b.tls,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return err
	}
	defer cli.Close()

	ttl := int64(b.cfg.TTL / time.Second)
	gctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout)
	lease, err := cli.Grant(gctx, ttl)
	cancel()
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	kach, err := cli.KeepAlive(sctx, lease.ID)
	if err != nil {
		return err
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithContext(sctx))
	if err != nil {
		return err
	}
	elec := concurrency.NewElection(sess, b.cfg.Prefix)
	campDone := make(chan struct{})
	defer func() {
		// Release: resign (if leading) and revoke the lease, so the next
		// candidate takes over at once. The campaign goroutine has
		// stopped using elec first (an Election is not safe for
		// concurrent use); b.mu orders this with Resign.
		stop()
		<-campDone
		rctx, cancel := context.WithTimeout(context.Background(), b.cfg.DialTimeout)
		defer cancel()
		b.mu.Lock()
		b.elec = nil
		elec.Resign(rctx)
		b.mu.Unlock()
		cli.Revoke(rctx, lease.ID)
	}()

	var (
		smu      sync.Mutex
		renewed  = time.Now() // the lease was granted at least this recently
		leaderKV *leaderKey
		won      bool // Campaign returned: this replica leads (and may Resign)
	)
	emit := func() {
		smu.Lock()
		k, r, w := leaderKV, renewed, won
		smu.Unlock()
		switch {
		case k == nil:
			report(backend.Observation{})
		case k.lease == lease.ID && !w:
			// Our key is first, but Campaign has not returned yet: not
			// claimed until it has (so that Resign works when we claim).
			report(backend.Observation{})
		case k.lease == lease.ID:
			report(backend.Observation{Leader: c.ID, Address: c.Address, Epoch: uint64(k.rev), Expires: r.Add(b.cfg.TTL)})
		case k.val.ID == c.ID:
			// A key of an earlier life of this replica (before a crash), not
			// yet expired: nobody acts on it; it is not us now.
			report(backend.Observation{})
		default:
			report(backend.Observation{Leader: k.val.ID, Address: k.val.Address, Epoch: uint64(k.rev)})
		}
	}

	errc := make(chan error, 3)
	// Keep-alive answers renew our claim.
	go func() {
		for range kach {
			smu.Lock()
			renewed = time.Now()
			self := leaderKV != nil && leaderKV.lease == lease.ID
			smu.Unlock()
			if self {
				emit()
			}
		}
		errc <- errors.New("lease keep-alive ended (lease lost or etcd unreachable)")
	}()
	// Observe the leader key: the first-created key under the prefix.
	go func() {
		errc <- b.watchLeader(sctx, cli, func(k *leaderKey) {
			smu.Lock()
			leaderKV = k
			smu.Unlock()
			emit()
		})
	}()
	// Campaign; after a resignation, campaign again (at the back).
	go func() {
		defer close(campDone)
		for {
			if err := elec.Campaign(sctx, val); err != nil {
				errc <- fmt.Errorf("campaign: %w", err)
				return
			}
			b.mu.Lock()
			b.elec = elec
			b.mu.Unlock()
			smu.Lock()
			won = true
			smu.Unlock()
			emit()
			select {
			case <-sctx.Done():
				errc <- nil
				return
			case <-b.resign:
			}
			smu.Lock()
			won = false
			smu.Unlock()
		}
	}()

	select {
	case <-ctx.Done():
		return nil
	case <-sess.Done():
		return errors.New("session lease lost")
	case err := <-errc:
		return err
	}
}

type leaderKey struct {
	rev   int64
	lease clientv3.LeaseID
	val   value
}

// watchLeader reports the leader key (nil: none) now and after every change
// under the prefix.
func (b *Backend) watchLeader(ctx context.Context, cli *clientv3.Client, report func(*leaderKey)) error {
	for {
		resp, err := cli.Get(ctx, b.cfg.Prefix, clientv3.WithFirstCreate()...)
		if err != nil {
			return err
		}
		var k *leaderKey
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			k = &leaderKey{rev: kv.CreateRevision, lease: clientv3.LeaseID(kv.Lease)}
			if err := json.Unmarshal(kv.Value, &k.val); err != nil || k.val.ID == "" {
				k.val = value{ID: string(kv.Value)} // a candidate that is not podkit: its value names it
			}
		}
		report(k)
		wctx, cancel := context.WithCancel(ctx)
		wch := cli.Watch(wctx, b.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		changed := false
		for !changed {
			wr, ok := <-wch
			if !ok {
				cancel()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("watch ended")
			}
			if err := wr.Err(); err != nil {
				cancel()
				return err
			}
			changed = len(wr.Events) > 0
		}
		cancel()
	}
}

// Resign implements backend.Backend: the leader's key is deleted, the next
// candidate in line leads at once, and this replica campaigns again.
func (b *Backend) Resign(ctx context.Context) error {
	b.mu.Lock()
	elec := b.elec
	b.elec = nil
	if elec == nil {
		b.mu.Unlock()
		return backend.ErrNotLeader
	}
	err := elec.Resign(ctx)
	if err != nil {
		b.elec = elec // still leading
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case b.resign <- struct{}{}:
	default:
	}
	return nil
}
