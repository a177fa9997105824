// Package client is a small Go client of podkit's work-queue HTTP API
// (docs/queue.md), used by `podkit worker` and `podkit queue
// stat|push|ls|replay`. Workers in other languages speak the same API
// with any HTTP library.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one coordinator.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client of the coordinator at base (e.g.
// "http://queue:8080" or "https://queue:8443"); hc nil means a client
// with DefaultTransport and no overall timeout (long-polls bound
// themselves). A coordinator whose API takes credentials needs hc's
// transport to present them: podkit's clients wrap DefaultTransport with
// container.APIClient's Transport (a CA, a client certificate, a bearer
// token).
func New(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: DefaultTransport(64)}
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}
}

// DefaultTransport is the transport New uses: HTTP/1.1 with keep-alive,
// up to idlePerHost idle connections to the coordinator, the proxy from
// the environment. Its TLSClientConfig is set (empty: the system's CAs) so
// that it, and clones of it with a CA or client certificate added, speak
// HTTP/1.1 over TLS too and offer nothing else in ALPN.
func DefaultTransport(idlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: idlePerHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// ParseQueueURL splits "http://host:port/queues/name" (or https://) into
// the server's base URL and the queue name.
func ParseQueueURL(raw string) (base, queue string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("%q: missing host", raw)
	}
	path := strings.TrimRight(u.Path, "/")
	i := strings.LastIndex(path, "/queues/")
	if i < 0 || strings.Contains(path[i+len("/queues/"):], "/") || len(path) == i+len("/queues/") {
		return "", "", fmt.Errorf("%q: want URL/queues/<name>", raw)
	}
	queue = path[i+len("/queues/"):]
	u.Path = path[:i]
	u.RawQuery, u.Fragment = "", ""
	return u.String(), queue, nil
}

// CheckTLS reports TLS settings (a CA, a client certificate: tls true)
// given for a URL that is not https://; flag names the URL's flag.
func CheckTLS(flag, rawURL string, tls bool) error {
	if tls && !strings.HasPrefix(strings.ToLower(rawURL), "https://") {
		return fmt.Errorf("--ca, --cert: TLS settings, but %s %s is not an https:// URL", flag, redact(rawURL))
	}
	return nil
}

// redact drops a URL's user information.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// Error is an answer other than success.
type Error struct {
	Status int
	Msg    string // the answer's "error"
	// Reason and Role are a refusal's (401, 403): why (no_credential,
	// bad_token, wrong_role, cert_not_allowed) and the role the request
	// needed (one of Roles, when several would do).
	Reason string
	Role   string
	Roles  []string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
	if (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden) && e.Role != "" && !strings.Contains(e.Msg, "role "+e.Role) {
		roles := e.Role
		if len(e.Roles) > 1 {
			roles = strings.Join(e.Roles, " or ")
		}
		msg += " (needs role " + roles + ")"
	}
	return msg
}

// NeededRoles returns the roles a refused request needed: Roles, or Role.
func (e *Error) NeededRoles() []string {
	if len(e.Roles) > 0 {
		return e.Roles
	}
	if e.Role != "" {
		return []string{e.Role}
	}
	return nil
}

// ErrStale matches (errors.Is) a 409 answer to a heartbeat, ack or nack:
// the lease is no longer this worker's.
var ErrStale = errors.New("stale lease")

// ErrBadAnswer matches (errors.Is) an answer that is not the JSON the API
// documents: something other than a podkit coordinator answered.
var ErrBadAnswer = errors.New("bad answer")

// ErrUnauthorized matches (errors.Is) a 401 answer: the request had no
// credential, or one the coordinator does not know.
var ErrUnauthorized = errors.New("unauthorized")

// ErrForbidden matches (errors.Is) a 403 answer: the credential is known
// but lacks the role the request needs (or the client certificate is not
// in the coordinator's allow-lists).
var ErrForbidden = errors.New("forbidden")

// Is makes errors.Is(err, ErrStale) true for 409s, ErrUnauthorized for
// 401s and ErrForbidden for 403s.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrStale:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	}
	return false
}

// Item is one item to enqueue.
type Item struct {
	Payload        json.RawMessage `json:"payload"`
	Priority       int64           `json:"priority,omitempty"`
	Delay          string          `json:"delay,omitempty"`
	NotBefore      string          `json:"not_before,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	MaxAttempts    int             `json:"max_attempts,omitempty"`
	Timeout        string          `json:"timeout,omitempty"`
}

// EnqueueResult answers one item.
type EnqueueResult struct {
	Status    int    `json:"status"`
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error"`
}

// Lease is a leased item.
type Lease struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	Payload        json.RawMessage `json:"payload"`
	Attempt        int             `json:"attempt"`
	Token          string          `json:"token"`
	Deadline       time.Time       `json:"deadline"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
}

// Timeout is the item's timeout.
func (l Lease) Timeout() time.Duration { return time.Duration(l.TimeoutSeconds * float64(time.Second)) }

// Result answers one token in a batch completion.
type Result struct {
	Token    string     `json:"token"`
	ID       string     `json:"id"`
	Status   int        `json:"status"`
	State    string     `json:"state"`
	Deadline *time.Time `json:"deadline"`
	Error    string     `json:"error"`
}

// Stats is GET /queues/{q}.
type Stats struct {
	Name                  string  `json:"name"`
	Ready                 int     `json:"ready"`
	Delayed               int     `json:"delayed"`
	Leased                int     `json:"leased"`
	Done                  int     `json:"done"`
	Dead                  int     `json:"dead"`
	Cancelled             int     `json:"cancelled"`
	InFlight              int     `json:"in_flight"`
	OldestReadyAgeSeconds float64 `json:"oldest_ready_age_seconds"`
	Enqueued              uint64  `json:"enqueued_total"`
	Acked                 uint64  `json:"acked_total"`
	Nacked                uint64  `json:"nacked_total"`
	Expired               uint64  `json:"lease_expired_total"`
	DeadLettered          uint64  `json:"dead_lettered_total"`
	Stale                 uint64  `json:"stale_completions_total"`
	EnqueuedPerSecond     float64 `json:"enqueued_per_second"`
	AckedPerSecond        float64 `json:"acked_per_second"`
	FailedPerSecond       float64 `json:"failed_per_second"`
}

// ItemInfo is an item as stored.
type ItemInfo struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	State          string          `json:"state"`
	Payload        json.RawMessage `json:"payload"`
	Priority       int64           `json:"priority"`
	Attempt        int             `json:"attempt"`
	MaxAttempts    int             `json:"max_attempts"`
	Timeout        string          `json:"timeout"`
	IdempotencyKey string          `json:"idempotency_key"`
	Created        time.Time       `json:"created"`
	Updated        time.Time       `json:"updated"`
	NotBefore      *time.Time      `json:"not_before"`
	Deadline       *time.Time      `json:"deadline"`
	LastError      string          `json:"last_error"`
}

// Page is one page of items.
type Page struct {
	Items      []ItemInfo `json:"items"`
	NextCursor string     `json:"next_cursor"`
}

// do sends a request; out (if not nil) receives a 2xx JSON answer. A 204
// returns (false, nil).
func (c *Client) do(ctx context.Context, method, path string, body any, out any) (bool, error) {
	return c.doType(ctx, method, path, "application/json", body, out)
}

// doType is do with the body's content type.
func (c *Client) doType(ctx context.Context, method, path, ctype string, body any, out any) (bool, error) {
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		default:
			buf, err := json.Marshal(body)
			if err != nil {
				return false, err
			}
			rd = bytes.NewReader(buf)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return false, err
	}
	if resp.StatusCode == http.StatusNoContent {
		return false, nil
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error  string   `json:"error"`
			Reason string   `json:"reason"`
			Role   string   `json:"role"`
			Roles  []string `json:"roles"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return false, &Error{Status: resp.StatusCode, Msg: e.Error, Reason: e.Reason, Role: e.Role, Roles: e.Roles}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return false, fmt.Errorf("%s %s: %w: %w", method, path, ErrBadAnswer, err)
		}
	}
	return true, nil
}

func qpath(queue string) string { return "/queues/" + url.PathEscape(queue) }

// Enqueue enqueues items in one request, answering each.
func (c *Client) Enqueue(ctx context.Context, queue string, items []Item) ([]EnqueueResult, error) {
	var out struct {
		Items []EnqueueResult `json:"items"`
	}
	if _, err := c.do(ctx, "POST", qpath(queue)+"/items", items, &out); err != nil {
		return nil, err
	}
	if len(out.Items) != len(items) {
		return nil, fmt.Errorf("enqueue: %d answers for %d items", len(out.Items), len(items))
	}
	return out.Items, nil
}

// EnqueueRaw posts a body as is (a JSON array or NDJSON) and returns the
// per-item answers.
func (c *Client) EnqueueRaw(ctx context.Context, queue string, ndjson []byte) ([]EnqueueResult, error) {
	var out struct {
		Items []EnqueueResult `json:"items"`
	}
	if _, err := c.doType(ctx, "POST", qpath(queue)+"/items", "application/x-ndjson", ndjson, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Lease leases up to max items, waiting up to wait for the first. No
// items and no error means nothing came in time.
func (c *Client) Lease(ctx context.Context, queue string, max int, wait time.Duration) ([]Lease, error) {
	var out struct {
		Items []Lease `json:"items"`
	}
	body := map[string]any{"max_items": max, "wait_seconds": wait.Seconds()}
	if _, err := c.do(ctx, "POST", qpath(queue)+"/lease", body, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Heartbeat extends a lease and returns its new deadline.
func (c *Client) Heartbeat(ctx context.Context, token string) (time.Time, error) {
	var out Result
	_, err := c.do(ctx, "POST", "/leases/"+url.PathEscape(token)+"/heartbeat", nil, &out)
	if err != nil {
		return time.Time{}, err
	}
	if out.Deadline == nil {
		return time.Time{}, nil
	}
	return *out.Deadline, nil
}

// Ack completes a lease.
func (c *Client) Ack(ctx context.Context, token string) error {
	_, err := c.do(ctx, "POST", "/leases/"+url.PathEscape(token)+"/ack", nil, nil)
	return err
}

// Nack fails a lease with an error text; retryAfter 0 means the
// coordinator's backoff.
func (c *Client) Nack(ctx context.Context, token, errText string, retryAfter time.Duration) error {
	body := map[string]any{"error": errText}
	if retryAfter > 0 {
		body["retry_after"] = retryAfter.String()
	}
	_, err := c.do(ctx, "POST", "/leases/"+url.PathEscape(token)+"/nack", body, nil)
	return err
}

// AckMany acks many leases in one request.
func (c *Client) AckMany(ctx context.Context, tokens []string) ([]Result, error) {
	var out struct {
		Results []Result `json:"results"`
	}
	if _, err := c.do(ctx, "POST", "/leases/ack", map[string]any{"tokens": tokens}, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Stats returns a queue's counts.
func (c *Client) Stats(ctx context.Context, queue string) (Stats, error) {
	var out Stats
	_, err := c.do(ctx, "GET", qpath(queue), nil, &out)
	return out, err
}

// Queues returns every queue's counts.
func (c *Client) Queues(ctx context.Context) ([]Stats, error) {
	var out struct {
		Queues []Stats `json:"queues"`
	}
	_, err := c.do(ctx, "GET", "/queues", nil, &out)
	return out.Queues, err
}

// Get returns one item.
func (c *Client) Get(ctx context.Context, queue, id string) (ItemInfo, error) {
	var out ItemInfo
	_, err := c.do(ctx, "GET", qpath(queue)+"/items/"+url.PathEscape(id), nil, &out)
	return out, err
}

// List returns one page of a queue's items ("" state: any).
func (c *Client) List(ctx context.Context, queue, state, cursor string, limit int) (Page, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	if limit > 0 {
		v.Set("limit", fmt.Sprint(limit))
	}
	var out Page
	_, err := c.do(ctx, "GET", qpath(queue)+"/items?"+v.Encode(), nil, &out)
	return out, err
}

// Replay moves dead items back to ready: ids, or all when ids is empty.
func (c *Client) Replay(ctx context.Context, queue string, ids []string) ([]string, error) {
	var out struct {
		Replayed []string `json:"replayed"`
	}
	body := map[string]any{}
	if len(ids) > 0 {
		body["ids"] = ids
	}
	_, err := c.do(ctx, "POST", qpath(queue)+"/dead/replay", body, &out)
	return out.Replayed, err
}

// Drained reports whether the queue has nothing ready, delayed or leased.
func (c *Client) Drained(ctx context.Context, queue string) (bool, error) {
	_, err := c.do(ctx, "GET", qpath(queue)+"/drained", nil, nil)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable {
		return false, nil
	}
	return err == nil, err
}
