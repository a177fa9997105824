// Command mcbench is a memcached load generator for podkit's benchmarks
// (Debian packages none): C connections, each sending set and get
// requests for random keys, optionally pipelined P deep, for a fixed
// duration. It prints one line a script can read:
//
//	ops=123456.7 p50_ms=0.412 p99_ms=1.304 errors=0
//
// Latency is measured per pipeline round trip.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:11211", "memcached (or proxy) address")
	conns := flag.Int("c", 50, "connections")
	dur := flag.Duration("d", 10*time.Second, "duration")
	pipe := flag.Int("P", 1, "requests per pipeline round trip")
	keys := flag.Int("keys", 100000, "key space")
	size := flag.Int("size", 32, "value size in bytes")
	sets := flag.Float64("set-ratio", 0.5, "fraction of requests that are sets")
	flag.Parse()
	if *conns < 1 || *pipe < 1 || *keys < 1 || *size < 1 || *sets < 0 || *sets > 1 {
		fmt.Fprintln(os.Stderr, "mcbench: -c, -P, -keys and -size must be positive; -set-ratio in [0,1]")
		os.Exit(2)
	}
	value := bytes.Repeat([]byte("x"), *size)
	// The requests are prebuilt, so that the generator spends its CPU on
	// the network, not on formatting: a get and a set for every key.
	gets := make([][]byte, *keys)
	setReqs := make([][]byte, *keys)
	for k := range *keys {
		name := "bench:" + strconv.Itoa(k)
		gets[k] = []byte("get " + name + "\r\n")
		setReqs[k] = append(fmt.Appendf(nil, "set %s 0 0 %d\r\n", name, len(value)), append(value, "\r\n"...)...)
	}

	var (
		ops, errs atomic.Int64
		mu        sync.Mutex
		lat       []time.Duration
		wg        sync.WaitGroup
		stop      atomic.Bool
		failed    atomic.Value
	)
	for i := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", *addr)
			if err != nil {
				failed.Store(err)
				return
			}
			defer nc.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			br := bufio.NewReaderSize(nc, 64<<10)
			var out []byte
			kinds := make([]bool, *pipe)
			var mine []time.Duration
			for !stop.Load() {
				out = out[:0]
				for j := range *pipe {
					k := rng.IntN(*keys)
					kinds[j] = rng.Float64() < *sets
					if kinds[j] {
						out = append(out, setReqs[k]...)
					} else {
						out = append(out, gets[k]...)
					}
				}
				t0 := time.Now()
				if _, err := nc.Write(out); err != nil {
					failed.Store(err)
					return
				}
				for j := range *pipe {
					if err := readReply(br, kinds[j]); err != nil {
						if errors.Is(err, errServer) {
							errs.Add(1)
							continue
						}
						failed.Store(err)
						return
					}
				}
				mine = append(mine, time.Since(t0))
				ops.Add(int64(*pipe))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	start := time.Now()
	time.Sleep(*dur)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if err, ok := failed.Load().(error); ok {
		fmt.Fprintln(os.Stderr, "mcbench:", err)
		os.Exit(1)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	fmt.Printf("ops=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n", float64(ops.Load())/elapsed.Seconds(), q(0.5), q(0.99), errs.Load())
}

var errServer = errors.New("server error")

// readReply reads one reply: a storage line for a set, VALUE...END for a
// get.
func readReply(br *bufio.Reader, set bool) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("VALUE ")):
			// VALUE <key> <flags> <bytes>: the size is the last field.
			t := bytes.TrimRight(line, "\r\n")
			n, err := strconv.Atoi(string(t[bytes.LastIndexByte(t, ' ')+1:]))
			if err != nil || n < 0 {
				return fmt.Errorf("bad VALUE line %q", line)
			}
			if _, err := br.Discard(n + 2); err != nil {
				return err
			}
			continue
		case bytes.HasPrefix(line, []byte("END")), bytes.HasPrefix(line, []byte("STORED")):
			return nil
		case bytes.Contains(line, []byte("ERROR")):
			return errServer
		}
		if set {
			return nil
		}
		return fmt.Errorf("unexpected reply %q", line)
	}
}
