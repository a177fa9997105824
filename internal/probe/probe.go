// Package probe checks whether a dependency answers: a TCP port accepts a
// connection, or an HTTP(S) URL returns a 2xx or 3xx status. It backs
// `--wait-for` in the container contract and in `podkit await`.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrBadTarget is returned for a target that cannot be parsed.
var ErrBadTarget = errors.New("bad target")

// Target is one dependency to probe.
type Target struct {
	raw    string
	scheme string // tcp, http or https
	addr   string // host:port for tcp
	url    string // for http(s)
}

// Parse parses tcp://host:port, http://... or https://... .
func Parse(s string) (Target, error) {
	if !strings.Contains(s, "://") {
		return Target{}, fmt.Errorf("%w %q: missing scheme (want tcp://, http:// or https://)", ErrBadTarget, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("%w %q: %v", ErrBadTarget, s, err)
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Path != "" && u.Path != "/" {
			return Target{}, fmt.Errorf("%w %q: want tcp://host:port", ErrBadTarget, s)
		}
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return Target{}, fmt.Errorf("%w %q: want tcp://host:port", ErrBadTarget, s)
		}
		return Target{raw: s, scheme: "tcp", addr: u.Host}, nil
	case "http", "https":
		if u.Host == "" {
			return Target{}, fmt.Errorf("%w %q: missing host", ErrBadTarget, s)
		}
		return Target{raw: s, scheme: u.Scheme, url: s}, nil
	case "":
		return Target{}, fmt.Errorf("%w %q: missing scheme (want tcp://, http:// or https://)", ErrBadTarget, s)
	default:
		return Target{}, fmt.Errorf("%w %q: unknown scheme %q (want tcp, http or https)", ErrBadTarget, s, u.Scheme)
	}
}

// ParseAll parses every target, joining the errors.
func ParseAll(ss []string) ([]Target, error) {
	var out []Target
	var errs []error
	for _, s := range ss {
		t, err := Parse(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

func (t Target) String() string { return t.raw }

// client skips certificate verification for https targets, as kubelet's
// HTTPS probes do: the target is the pod's own application.
var client = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probe of a local dependency
		DisableKeepAlives: true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Check probes the target once; ctx bounds the attempt.
func (t Target) Check(ctx context.Context) error {
	switch t.scheme {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return err
		}
		return c.Close()
	default:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("%s answered %s", t.raw, resp.Status)
		}
		return nil
	}
}

// WaitError is what Wait returns when ctx ends before every target has
// answered: the targets that never did, with the last error of each. It
// unwraps to ctx.Err().
type WaitError struct {
	Pending []Target
	Last    []error // Last[i] is Pending[i]'s last failed attempt (nil: none finished)
	Err     error   // ctx.Err()
}

func (e *WaitError) Error() string {
	parts := make([]string, len(e.Pending))
	for i, t := range e.Pending {
		parts[i] = t.String() + " never answered"
		if e.Last[i] != nil {
			parts[i] += " (last error: " + e.Last[i].Error() + ")"
		}
	}
	return strings.Join(parts, "; ")
}

func (e *WaitError) Unwrap() error { return e.Err }

// Wait probes every target until all have answered once, trying each every
// interval with a per-attempt timeout of interval (at least 1 s). onFail is
// called with each failed attempt (may be nil). If ctx ends first it
// returns a *WaitError naming the targets that never answered, which
// unwraps to ctx.Err().
func Wait(ctx context.Context, targets []Target, interval time.Duration, onFail func(Target, error)) error {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	attempt := max(interval, time.Second)
	pending := append([]Target(nil), targets...)
	last := make(map[string]error, len(targets))
	giveUp := func(left []Target) error {
		e := &WaitError{Pending: left, Err: ctx.Err()}
		for _, t := range left {
			e.Last = append(e.Last, last[t.String()])
		}
		return e
	}
	for {
		var left []Target
		for i, t := range pending {
			actx, cancel := context.WithTimeout(ctx, attempt)
			err := t.Check(actx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return giveUp(append(left, pending[i:]...))
				}
				last[t.String()] = err
				if onFail != nil {
					onFail(t, err)
				}
				left = append(left, t)
			}
		}
		if len(left) == 0 {
			return nil
		}
		pending = left
		select {
		case <-ctx.Done():
			return giveUp(pending)
		case <-time.After(interval):
		}
	}
}
