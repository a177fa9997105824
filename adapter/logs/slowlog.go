package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/adapter/logs/internal/slowlog"
	"github.com/podkit/podkit/adapter/logs/parse"
	"github.com/podkit/podkit/adapter/logs/tail"
	"github.com/podkit/podkit/internal/resp"
)

// clientName names the poller's connection (CLIENT SETNAME), so that its
// own commands, logged when slowlog-log-slower-than is 0, are not written.
const clientName = "podkit-logs"

// slowlogPoller polls one Redis server's SLOWLOG and writes each new
// entry once, with events for restarts and lost entries.
type slowlogPoller struct {
	addr     string
	password string
	every    time.Duration
	timeout  time.Duration
	stateDir string
	out      io.Writer
	log      *slog.Logger
	m        *metrics

	client  *resp.Client
	tracker slowlog.Tracker
	enc     encoder
	rec     parse.Record
	src     source

	// firstPolled, if set, is called once the first poll has a result:
	// the health check is registered then, so that it reports that
	// result, never a "not polled yet" failure at every start.
	firstPolled func()

	mu      sync.Mutex
	lastErr error
}

func (sp *slowlogPoller) statePath() string {
	name := strings.NewReplacer(":", "_", "/", "_", "[", "", "]", "").Replace(sp.addr)
	return filepath.Join(sp.stateDir, "slowlog-"+name+".json")
}

func (sp *slowlogPoller) run(ctx context.Context) {
	sp.src = newSource("redis-slowlog", "address", sp.addr, false)
	sp.tracker.LastID = -1
	if sp.stateDir != "" {
		if b, err := os.ReadFile(sp.statePath()); err == nil {
			if err := json.Unmarshal(b, &sp.tracker); err != nil {
				sp.log.Warn("ignoring unreadable slowlog state", "path", sp.statePath(), "error", err)
				sp.tracker = slowlog.Tracker{LastID: -1}
			}
		}
	}
	defer func() {
		if sp.client != nil {
			sp.client.Close()
		}
	}()
	t := time.NewTicker(sp.every)
	defer t.Stop()
	up := sp.m.slowUp.WithLabelValues(sp.addr)
	failing := false
	first := true
	for {
		err := sp.poll(ctx)
		sp.mu.Lock()
		sp.lastErr = err
		sp.mu.Unlock()
		if first && ctx.Err() == nil && sp.firstPolled != nil {
			sp.firstPolled()
		}
		first = false
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			up.Set(0)
			sp.m.slowErrors.WithLabelValues(sp.addr).Inc()
			if sp.client != nil {
				sp.client.Close()
				sp.client = nil
			}
			if !failing {
				sp.log.Warn("SLOWLOG poll failed", "addr", sp.addr, "error", err)
			}
			failing = true
		} else {
			if failing {
				sp.log.Info("SLOWLOG poll works again", "addr", sp.addr)
			}
			failing = false
			up.Set(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check reports the last poll's result, for /healthz. It is registered
// after the first poll (see firstPolled).
func (sp *slowlogPoller) check(context.Context) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.lastErr
}

func (sp *slowlogPoller) poll(ctx context.Context) error {
	if sp.client == nil {
		c, err := resp.Dial(ctx, "tcp", sp.addr, resp.DialOptions{Password: sp.password, Timeout: sp.timeout})
		if err != nil {
			return err
		}
		if _, err := c.Do(ctx, "CLIENT", "SETNAME", clientName); err != nil {
			c.Close()
			return fmt.Errorf("CLIENT SETNAME: %w", err)
		}
		sp.client = c
	}
	c := sp.client
	maxLen := 0
	if v, err := c.Do(ctx, "CONFIG", "GET", "slowlog-max-len"); err == nil && len(v.Array) == 2 {
		maxLen, _ = strconv.Atoi(v.Array[1].Str)
	}
	info, err := c.Do(ctx, "INFO", "server")
	if err != nil {
		return fmt.Errorf("INFO server: %w", err)
	}
	runID := slowlog.ParseInfoField(info.Str, "run_id")
	v, err := c.Do(ctx, "SLOWLOG", "GET", "-1")
	var se resp.Error
	if errors.As(err, &se) { // before Redis 7, -1 is not "all"
		v, err = c.Do(ctx, "SLOWLOG", "GET", strconv.Itoa(max(maxLen, 1024)))
	}
	if err != nil {
		return fmt.Errorf("SLOWLOG GET: %w", err)
	}
	entries, err := slowlog.ParseEntries(v)
	if err != nil {
		return err
	}
	res := sp.tracker.Observe(runID, entries, maxLen)
	now := time.Now()
	sp.enc.buf = sp.enc.buf[:0]
	if res.Restart {
		sp.notice(now, "redis restarted: "+res.RestartReason+"; its slowlog starts again", "redis.slowlog.restart",
			"previous_last_id", strconv.FormatInt(res.PreviousID, 10), "run_id", strconv.Quote(runID))
	}
	if res.Lost > 0 {
		reason, why := "reset", "the slowlog was reset (SLOWLOG RESET) before they were read"
		if res.Overflow {
			reason, why = "overflow", fmt.Sprintf("the slowlog was full (slowlog-max-len %d); poll more often than --every %s or raise slowlog-max-len", maxLen, sp.every)
		}
		sp.notice(now, fmt.Sprintf("%d slowlog entries (ids %d to %d) were lost between polls: %s", res.Lost, res.FirstLost, res.LastLost, why),
			"redis.slowlog."+reason, "lost_entries", strconv.FormatInt(res.Lost, 10),
			"first_lost_id", strconv.FormatInt(res.FirstLost, 10), "last_lost_id", strconv.FormatInt(res.LastLost, 10),
			"slowlog_max_len", strconv.Itoa(maxLen))
	}
	written := 0
	self := c.LocalAddr().String()
	for _, e := range res.New {
		if e.ClientName == clientName || e.Client == self {
			continue // the poll's own commands, with slowlog-log-slower-than 0 (AUTH comes before CLIENT SETNAME)
		}
		sp.entry(e)
		written++
	}
	if len(sp.enc.buf) > 0 {
		if _, err := sp.out.Write(sp.enc.buf); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
	sp.tracker.Commit(runID, res)
	a := sp.addr
	if res.Restart {
		sp.m.slowRest.WithLabelValues(a).Inc()
		sp.log.Warn("redis restart detected", "addr", a, "reason", res.RestartReason)
	}
	if res.Lost > 0 {
		reason := "reset"
		if res.Overflow {
			reason = "overflow"
		}
		sp.m.slowOver.WithLabelValues(a, reason).Inc()
		sp.m.slowLost.WithLabelValues(a).Add(float64(res.Lost))
		sp.log.Warn("slowlog entries lost between polls", "addr", a, "lost", res.Lost, "reason", reason)
	}
	sp.m.slowEntries.WithLabelValues(a).Add(float64(written))
	sp.m.slowLastID.WithLabelValues(a).Set(float64(sp.tracker.LastID))
	if sp.stateDir != "" && (len(res.New) > 0 || res.Restart) {
		b, _ := json.Marshal(sp.tracker)
		if err := tail.WriteFileAtomic(sp.statePath(), b); err != nil {
			sp.m.checkpoints.WithLabelValues("error").Inc()
			sp.log.Error("cannot write slowlog state", "path", sp.statePath(), "error", err)
		} else {
			sp.m.checkpoints.WithLabelValues("ok").Inc()
		}
	}
	return nil
}

// notice encodes an event about the slowlog itself; kv are attribute
// names and raw JSON values.
func (sp *slowlogPoller) notice(now time.Time, body, event string, kv ...string) {
	r := &sp.rec
	r.Reset()
	r.Time, r.HasTime = now, true
	r.Severity = parse.Warn
	r.Body = []byte(body)
	r.Attrs = append(r.Attrs, parse.Attr{Key: []byte("event"), Value: []byte(event)})
	for i := 0; i+1 < len(kv); i += 2 {
		r.Attrs = append(r.Attrs, parse.Attr{Key: []byte(kv[i]), Value: []byte(kv[i+1]), Kind: parse.Raw})
	}
	sp.enc.event(r, false, 1, false, now, &sp.src, 0)
}

// entry encodes one SLOWLOG entry.
func (sp *slowlogPoller) entry(e slowlog.Entry) {
	r := &sp.rec
	r.Reset()
	r.Time, r.HasTime = e.Time, true
	r.Severity = parse.Warn
	r.Body = []byte(strings.Join(e.Args, " "))
	args := []byte{'['}
	for i, a := range e.Args {
		if i > 0 {
			args = append(args, ',')
		}
		args = appendStr(args, a)
	}
	args = append(args, ']')
	r.Attrs = append(r.Attrs,
		parse.Attr{Key: []byte("event"), Value: []byte("redis.slowlog.entry")},
		parse.Attr{Key: []byte("redis.slowlog.id"), Value: strconv.AppendInt(nil, e.ID, 10), Kind: parse.Raw},
		parse.Attr{Key: []byte("redis.slowlog.duration_us"), Value: strconv.AppendInt(nil, e.Duration.Microseconds(), 10), Kind: parse.Raw},
		parse.Attr{Key: []byte("redis.args"), Value: args, Kind: parse.Raw},
	)
	if len(e.Args) > 0 {
		r.Attrs = append(r.Attrs, parse.Attr{Key: []byte("redis.command"), Value: []byte(strings.ToUpper(e.Args[0]))})
	}
	if e.Client != "" {
		r.Attrs = append(r.Attrs, parse.Attr{Key: []byte("client.address"), Value: []byte(e.Client)})
	}
	if e.ClientName != "" {
		r.Attrs = append(r.Attrs, parse.Attr{Key: []byte("redis.client.name"), Value: []byte(e.ClientName)})
	}
	sp.enc.event(r, false, 1, false, e.Time, &sp.src, 0)
}
