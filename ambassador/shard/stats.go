package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/podkit/podkit/internal/buildinfo"
)

// The stats listener is twemproxy's: a connection to it gets one JSON
// document and is closed. Its fields are nutcracker 0.5.0's, so that the
// exporters and dashboards that read nutcracker's stats port read podkit's.
// Unlike nutcracker, which aggregates every --stats-interval, the values
// are current at each connection.

// Twemproxy's stats defaults.
const (
	DefaultStatsPort = 22222
	DefaultStatsAddr = "0.0.0.0"
)

// statsListen opens the stats listener. With nutcracker's defaults (not
// asked for explicitly) a port in use is a warning, not a failure, so
// that podkit can run beside a nutcracker or another podkit.
func (px *Proxy) statsListen() (net.Listener, error) {
	if px.cfg.StatsAddr == "off" {
		return nil, nil
	}
	addr := net.JoinHostPort(px.cfg.StatsAddr, strconv.Itoa(px.cfg.StatsPort))
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if px.cfg.statsExplicit() {
		return nil, fmt.Errorf("--stats-port/--stats-addr: stats listener: %w", err)
	}
	px.log.Warn("no twemproxy stats listener on its default address (set --stats-port and --stats-addr to require one, or --stats-addr off)", "addr", addr, "error", err)
	return nil, nil
}

// serveStats answers every connection to ln with the stats and closes it.
func (px *Proxy) serveStats(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			px.log.Warn("stats: accept failed", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(acceptRetry.Delay(1)):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			nc.Write(px.Stats())
		}()
	}
}

// StatsAddr is the address of the twemproxy stats listener, once Run has
// opened it (nil if there is none).
func (px *Proxy) StatsAddr() net.Addr {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.statsLn == nil {
		return nil
	}
	return px.statsLn.Addr()
}

// Stats returns twemproxy's stats document: what a connection to the
// stats port reads.
func (px *Proxy) Stats() []byte {
	host, _ := os.Hostname()
	now := time.Now()
	var curr, total uint64
	pools := px.pools()
	for _, p := range pools {
		curr += uint64(max(p.counters.clients.Load(), 0))
		total += p.counters.accepted.Load()
		for _, s := range p.servers {
			curr += uint64(max(s.open.Load(), 0))
			total += s.connects.Load()
		}
	}
	w := &jsonObj{b: make([]byte, 0, 1024)}
	w.open("")
	w.str("service", "nutcracker")
	w.str("source", host)
	w.str("version", buildinfo.Get().Version)
	w.num("uptime", uint64(now.Sub(px.started).Seconds()))
	w.num("timestamp", uint64(now.Unix()))
	w.num("total_connections", total)
	w.num("curr_connections", curr)
	for _, p := range pools {
		var ejects, fwdErr uint64
		for _, s := range p.servers {
			ejects += s.ejections.Load()
			s.errMu.Lock()
			for _, n := range s.errs {
				fwdErr += n
			}
			s.errMu.Unlock()
		}
		w.open(p.cfg.Name)
		w.num("client_eof", p.counters.clientEOF.Load())
		w.num("client_err", p.counters.clientErr.Load())
		w.num("client_connections", uint64(max(p.counters.clients.Load(), 0)))
		w.num("server_ejects", ejects)
		w.num("forward_error", fwdErr)
		w.num("fragments", p.counters.fragments.Load())
		for _, s := range p.servers {
			var inQ, inB, outQ, outB int
			for _, c := range s.cs {
				a, ab, o, ob := c.queues()
				inQ, inB, outQ, outB = inQ+a, inB+ab, outQ+o, outB+ob
			}
			w.open(s.cfg.Name)
			w.num("server_eof", s.eofs.Load())
			w.num("server_err", s.connErrs.Load())
			w.num("server_timedout", s.timeouts.Load())
			w.num("server_connections", uint64(max(s.open.Load(), 0)))
			w.num("server_ejected_at", uint64(max(s.ejectedAt.Load(), 0)))
			w.num("requests", s.sent.Load())
			w.num("request_bytes", s.sentBytes.Load())
			w.num("responses", s.requests.Load())
			w.num("response_bytes", s.respBytes.Load())
			w.num("in_queue", uint64(inQ))
			w.num("in_queue_bytes", uint64(inB))
			w.num("out_queue", uint64(outQ))
			w.num("out_queue_bytes", uint64(outB))
			w.close()
		}
		w.close()
	}
	w.close()
	return append(w.b, '\n')
}

// jsonObj writes nested JSON objects with their keys in the order given
// (nutcracker's order), which encoding/json's maps would sort.
type jsonObj struct {
	b     []byte
	first bool
}

func (w *jsonObj) key(k string) {
	if !w.first {
		w.b = append(w.b, ", "...)
	}
	w.first = false
	kb, _ := json.Marshal(k)
	w.b = append(append(w.b, kb...), ':')
}

// open starts an object, as the value of k (top level: k is "").
func (w *jsonObj) open(k string) {
	if len(w.b) > 0 {
		w.key(k)
	}
	w.b = append(w.b, '{')
	w.first = true
}

func (w *jsonObj) close() {
	w.b = append(w.b, '}')
	w.first = false
}

func (w *jsonObj) str(k, v string) {
	w.key(k)
	vb, _ := json.Marshal(v)
	w.b = append(w.b, vb...)
}

func (w *jsonObj) num(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// queues returns the requests waiting to be written (and their bytes) and
// those written and waiting for a reply.
func (c *conn) queues() (inQ, inBytes, outQ, outBytes int) {
	count := func() {
		inQ, outQ = len(c.queue), c.inflight.len()
		for _, r := range c.queue {
			inBytes += len(r.out)
		}
		for _, r := range c.inflight.buf[c.inflight.head:] {
			outBytes += len(r.out)
		}
	}
	c.inspect(count)
	return
}
