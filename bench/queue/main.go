// Command queue is the load driver of bench/queue.sh: the same no-op
// workload (enqueue → lease → ack, 8 workers) against podkit's work queue
// (over its HTTP API, batch forms) or asynq on redis-server, printing
// jobs/s and dispatch latency (enqueue sent → item handed to a worker).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

type config struct {
	system    string
	url       string
	redis     string
	jobs      int
	workers   int
	producers int
	batch     int
	rate      int
	idleFor   time.Duration
	label     string // the system= printed (default: system)
	ca        string // podkit over TLS: CA bundle of the coordinator's certificate
	cert, key string // podkit over mutual TLS: the client certificate
	tokenFile string // podkit with tokens: the bearer token
}

func main() {
	var c config
	flag.StringVar(&c.system, "system", "podkit", "podkit or asynq")
	flag.StringVar(&c.url, "url", "http://127.0.0.1:18700", "podkit queue base URL")
	flag.StringVar(&c.redis, "redis", "127.0.0.1:18701", "redis address for asynq")
	flag.IntVar(&c.jobs, "jobs", 50000, "jobs in the saturation run")
	flag.IntVar(&c.workers, "workers", 8, "workers")
	flag.IntVar(&c.producers, "producers", 4, "concurrent producers")
	flag.IntVar(&c.batch, "batch", 100, "podkit: items per enqueue, lease and ack request")
	flag.IntVar(&c.rate, "rate", 1000, "jobs/s of the idle-latency run")
	flag.DurationVar(&c.idleFor, "idle-for", 5*time.Second, "duration of the idle-latency run")
	flag.StringVar(&c.label, "label", "", "the system= name printed (default: -system)")
	flag.StringVar(&c.ca, "ca", "", "podkit over TLS: the coordinator's CA bundle (PEM)")
	flag.StringVar(&c.cert, "cert", "", "podkit over mutual TLS: client certificate (PEM)")
	flag.StringVar(&c.key, "key", "", "podkit over mutual TLS: client key (PEM)")
	flag.StringVar(&c.tokenFile, "token-file", "", "podkit with tokens: file holding the bearer token")
	flag.Parse()
	if c.label == "" {
		c.label = c.system
	}
	if err := setupClient(c); err != nil {
		log.Fatal(err)
	}
	var sat, idle result
	var err error
	switch c.system {
	case "podkit":
		sat, err = podkitRun(c, false)
		if err == nil {
			idle, err = podkitRun(c, true)
		}
	case "asynq":
		sat, err = asynqRun(c, false)
		if err == nil {
			idle, err = asynqRun(c, true)
		}
	default:
		err = fmt.Errorf("unknown -system %q", c.system)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("system=%s jobs_per_s=%.0f sat_p50_ms=%.2f sat_p99_ms=%.2f idle_jobs_per_s=%.0f idle_p50_ms=%.2f idle_p99_ms=%.2f\n",
		c.label, sat.rate, sat.p(50), sat.p(99), idle.rate, idle.p(50), idle.p(99))
}

type result struct {
	rate float64
	lat  []time.Duration
}

func (r result) p(q float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	i := int(float64(len(r.lat)-1) * q / 100)
	return float64(r.lat[i]) / 1e6
}

// collector gathers latencies and counts completions.
type collector struct {
	mu   sync.Mutex
	lat  []time.Duration
	done atomic.Int64
	all  chan struct{}
	n    int64
	once sync.Once
}

func newCollector(n int) *collector {
	return &collector{n: int64(n), all: make(chan struct{}), lat: make([]time.Duration, 0, n)}
}

func (c *collector) add(sentNanos int64, received time.Time) {
	d := received.Sub(time.Unix(0, sentNanos))
	c.mu.Lock()
	c.lat = append(c.lat, d)
	c.mu.Unlock()
}

func (c *collector) finish(k int) {
	if c.done.Add(int64(k)) >= c.n {
		c.once.Do(func() { close(c.all) })
	}
}

func (c *collector) wait(d time.Duration) error {
	select {
	case <-c.all:
		return nil
	case <-time.After(d):
		return fmt.Errorf("only %d of %d jobs completed within %s", c.done.Load(), c.n, d)
	}
}

type payload struct {
	T int64 `json:"t"`
}

var hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}

// bearer is the token sent with every podkit request ("" for none).
var bearer string

// setupClient gives hc the TLS settings and the token of c.
func setupClient(c config) error {
	tr := hc.Transport.(*http.Transport)
	if c.ca != "" {
		b, err := os.ReadFile(c.ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("-ca %s: no certificates", c.ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		if c.cert != "" {
			pair, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				return err
			}
			tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
		}
	}
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return err
		}
		bearer = strings.TrimSpace(string(b))
	}
	return nil
}

func post(url string, body []byte, out any) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("POST %s: %s: %s", url, resp.Status, b)
	}
	if out != nil && resp.StatusCode != 204 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// podkitRun: saturation (as fast as possible, batches) or idle (rate jobs/s,
// one job per request, workers leasing one at a time).
func podkitRun(c config, idle bool) (result, error) {
	q := c.url + "/queues/bench-" + strconv.Itoa(rand.IntN(1e9))
	n := c.jobs
	if idle {
		n = int(float64(c.rate) * c.idleFor.Seconds())
	}
	col := newCollector(n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	leaseBody := []byte(fmt.Sprintf(`{"max_items":%d,"wait_seconds":1}`, c.batch))
	if idle {
		leaseBody = []byte(`{"max_items":8,"wait_seconds":1}`)
	}
	var werr atomic.Value
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, 4)
			var acks sync.WaitGroup
			defer acks.Wait()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var lr struct {
					Items []struct {
						Token   string  `json:"token"`
						Payload payload `json:"payload"`
					} `json:"items"`
				}
				if _, err := post(q+"/lease", leaseBody, &lr); err != nil {
					werr.Store(err)
					return
				}
				now := time.Now()
				if len(lr.Items) == 0 {
					continue
				}
				toks := make([]string, len(lr.Items))
				for i, it := range lr.Items {
					col.add(it.Payload.T, now)
					toks[i] = it.Token
				}
				// Acks are pipelined (up to 4 in flight per worker), as a
				// worker with some concurrency does: the next lease does not
				// wait for the previous ack's fsync.
				body, _ := json.Marshal(map[string]any{"tokens": toks})
				sem <- struct{}{}
				acks.Add(1)
				go func() {
					defer acks.Done()
					defer func() { <-sem }()
					if _, err := post(c.url+"/leases/ack", body, nil); err != nil {
						werr.Store(err)
						return
					}
					col.finish(len(toks))
				}()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // workers are polling
	start := time.Now()
	if idle {
		for i := 0; i < n; i++ {
			pace(start, i, c.rate)
			go func() {
				body := []byte(fmt.Sprintf(`{"payload":{"t":%d}}`, time.Now().UnixNano()))
				if _, err := post(q+"/items", body, nil); err != nil {
					werr.Store(err)
				}
			}()
		}
	} else {
		var pwg sync.WaitGroup
		per := (n + c.producers - 1) / c.producers
		for p := range c.producers {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				for i := p * per; i < min((p+1)*per, n); i += c.batch {
					k := min(c.batch, min((p+1)*per, n)-i)
					var b bytes.Buffer
					t := time.Now().UnixNano()
					for range k {
						fmt.Fprintf(&b, "{\"payload\":{\"t\":%d}}\n", t)
					}
					if _, err := post(q+"/items", b.Bytes(), nil); err != nil {
						werr.Store(err)
						return
					}
				}
			}()
		}
		pwg.Wait()
	}
	err := col.wait(60 * time.Second)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if e, ok := werr.Load().(error); ok && e != nil {
		return result{}, e
	}
	if err != nil {
		return result{}, err
	}
	return result{rate: float64(n) / elapsed.Seconds(), lat: col.lat}, nil
}

func asynqRun(c config, idle bool) (result, error) {
	n := c.jobs
	if idle {
		n = int(float64(c.rate) * c.idleFor.Seconds())
	}
	qname := "bench" + strconv.Itoa(rand.IntN(1e9))
	col := newCollector(n)
	redis := asynq.RedisClientOpt{Addr: c.redis}
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency:       c.workers,
		Queues:            map[string]int{qname: 1},
		TaskCheckInterval: 10 * time.Millisecond,
		LogLevel:          asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(ctx context.Context, t *asynq.Task) error {
		now := time.Now()
		var p payload
		json.Unmarshal(t.Payload(), &p)
		col.add(p.T, now)
		col.finish(1)
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return result{}, err
	}
	defer srv.Shutdown()
	cl := asynq.NewClient(redis)
	defer cl.Close()
	time.Sleep(100 * time.Millisecond)
	var perr atomic.Value
	enqueue := func() {
		b, _ := json.Marshal(payload{T: time.Now().UnixNano()})
		if _, err := cl.Enqueue(asynq.NewTask("noop", b), asynq.Queue(qname), asynq.MaxRetry(3)); err != nil {
			perr.Store(err)
		}
	}
	start := time.Now()
	if idle {
		for i := range n {
			pace(start, i, c.rate)
			go enqueue()
		}
	} else {
		var pwg sync.WaitGroup
		per := (n + c.producers*16 - 1) / (c.producers * 16)
		for p := range c.producers * 16 { // asynq enqueues one task per round trip: more producers
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				for i := p * per; i < min((p+1)*per, n); i++ {
					enqueue()
				}
			}()
		}
		pwg.Wait()
	}
	err := col.wait(120 * time.Second)
	elapsed := time.Since(start)
	if e, ok := perr.Load().(error); ok && e != nil {
		return result{}, e
	}
	if err != nil {
		return result{}, err
	}
	return result{rate: float64(n) / elapsed.Seconds(), lat: col.lat}, nil
}

func init() { log.SetFlags(0); log.SetOutput(os.Stderr) }

// pace sleeps until job i of a run at rate jobs/s that began at start is
// due (an absolute schedule: a late loop catches up instead of dropping).
func pace(start time.Time, i, rate int) {
	if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
		time.Sleep(d)
	}
}
