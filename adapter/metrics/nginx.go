package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// StubStatus is nginx's stub_status page.
type StubStatus struct {
	Active, Accepted, Handled, Requests int64
	Reading, Writing, Waiting           int64
}

// maxStatusBody bounds how much of a status page is read.
const maxStatusBody = 64 << 10

// ParseStubStatus parses the page served by nginx's stub_status:
//
//	Active connections: 291
//	server accepts handled requests
//	 16630948 16630948 31070465
//	Reading: 6 Writing: 179 Waiting: 106
//
// Anything else is a *ParseError naming the line.
func ParseStubStatus(b []byte) (StubStatus, error) {
	var s StubStatus
	perr := func(line int, format string, a ...any) error {
		return &ParseError{What: "stub_status", Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n \t"), "\n")
	if len(lines) != 4 {
		return s, perr(0, "want 4 lines, got %d", len(lines))
	}
	num := func(line int, f string) (int64, error) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return 0, perr(line, "%q is not a count", clip(f))
		}
		return n, nil
	}
	var err error
	f := strings.Fields(lines[0])
	if len(f) != 3 || f[0] != "Active" || f[1] != "connections:" {
		return s, perr(1, "want \"Active connections: N\", got %q", clip(lines[0]))
	}
	if s.Active, err = num(1, f[2]); err != nil {
		return s, err
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "server accepts handled requests" {
		return s, perr(2, "want \"server accepts handled requests\", got %q", clip(lines[1]))
	}
	f = strings.Fields(lines[2])
	if len(f) != 3 {
		return s, perr(3, "want 3 counts (accepts handled requests), got %q", clip(lines[2]))
	}
	for i, p := range []*int64{&s.Accepted, &s.Handled, &s.Requests} {
		if *p, err = num(3, f[i]); err != nil {
			return s, err
		}
	}
	f = strings.Fields(lines[3])
	if len(f) != 6 || f[0] != "Reading:" || f[2] != "Writing:" || f[4] != "Waiting:" {
		return s, perr(4, "want \"Reading: N Writing: N Waiting: N\", got %q", clip(lines[3]))
	}
	for i, p := range []*int64{&s.Reading, &s.Writing, &s.Waiting} {
		if *p, err = num(4, f[2*i+1]); err != nil {
			return s, err
		}
	}
	return s, nil
}

// clip shortens outside input quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

type nginxScraper struct {
	url    string
	client *http.Client
}

func (n *nginxScraper) scrape(ctx context.Context, e *emitter) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "podkit-metrics")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &httpStatusError{url: n.url, status: resp.Status}
	}
	s, err := ParseStubStatus(body)
	if err != nil {
		return err
	}
	e.gauge("nginx_connections_active", "Active client connections", float64(s.Active))
	e.counter("nginx_connections_accepted", "Accepted client connections", float64(s.Accepted))
	e.counter("nginx_connections_handled", "Handled client connections", float64(s.Handled))
	e.gauge("nginx_connections_reading", "Connections where NGINX is reading the request header", float64(s.Reading))
	e.gauge("nginx_connections_writing", "Connections where NGINX is writing the response back to the client", float64(s.Writing))
	e.gauge("nginx_connections_waiting", "Idle client connections", float64(s.Waiting))
	e.counter("nginx_http_requests_total", "Total http requests", float64(s.Requests))
	return nil
}

func (n *nginxScraper) close() error {
	n.client.CloseIdleConnections()
	return nil
}
