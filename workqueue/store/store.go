// Package store defines the work queue's storage interface: a Store keeps
// every queue's items and their leases, and answers for durability. The
// coordinator (package workqueue) puts HTTP in front of a Store; the
// embedded durable backend is package wal, and package storetest is the
// conformance suite every backend passes.
//
// A Store is a state machine per item:
//
//	enqueue ─▶ delayed ─▶ ready ─▶ leased ─▶ done
//	                        ▲         │
//	                        └─ retry ─┤ (nack or expired lease, with backoff)
//	                                  └─▶ dead (after max_attempts) ─ replay ─▶ ready
//
// and a cancelled state reached from anything but done. A lease is named by
// a token that encodes the item's id, the attempt number and a random part,
// so a token from an earlier attempt can never complete a later one.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is an item's state.
type State string

// The states of an item.
const (
	Delayed   State = "delayed"
	Ready     State = "ready"
	Leased    State = "leased"
	Done      State = "done"
	Dead      State = "dead"
	Cancelled State = "cancelled"
)

// ParseState parses a state name; "" is allowed and means any state.
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case "", Delayed, Ready, Leased, Done, Dead, Cancelled:
		return st, nil
	}
	return "", fmt.Errorf("%w: unknown state %q (want delayed, ready, leased, done, dead or cancelled)", ErrInvalid, s)
}

// Errors a Store returns; test with errors.Is.
var (
	// ErrNotFound: no such item (or queue).
	ErrNotFound = errors.New("not found")
	// ErrStaleLease: the token names an attempt that is no longer the
	// item's current lease (it expired and the item moved on, or the item
	// was completed or cancelled).
	ErrStaleLease = errors.New("stale lease")
	// ErrBadToken: the token is not a lease token at all.
	ErrBadToken = errors.New("malformed lease token")
	// ErrInvalid: a request field is invalid.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the item is not in a state that allows the operation
	// (replaying an item that is not dead, cancelling a done item).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the store cannot make the change durable (disk full,
	// read-only data directory, closed store). Nothing was acknowledged.
	ErrUnavailable = errors.New("storage unavailable")
)

// Defaults for item fields.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxAttempts = 5
)

// NewItem is one item to enqueue.
type NewItem struct {
	Queue          string
	Payload        json.RawMessage // any JSON value; "null" when empty
	Priority       int64           // higher first
	NotBefore      time.Time       // zero: ready at once
	IdempotencyKey string
	MaxAttempts    int           // 0: DefaultMaxAttempts
	Timeout        time.Duration // lease duration; 0: DefaultTimeout
}

// EnqueueResult answers one NewItem.
type EnqueueResult struct {
	ID        string
	Duplicate bool  // the idempotency key was seen before; ID is the original item
	Err       error // this item was refused (ErrInvalid); the others may be stored
}

// Item is an item as stored.
type Item struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	State          State           `json:"state"`
	Payload        json.RawMessage `json:"payload"`
	Priority       int64           `json:"priority"`
	Attempt        int             `json:"attempt"` // attempts started so far
	MaxAttempts    int             `json:"max_attempts"`
	Timeout        time.Duration   `json:"-"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Created        time.Time       `json:"created"`
	Updated        time.Time       `json:"updated"`
	NotBefore      time.Time       `json:"not_before,omitzero"` // when delayed: when it becomes ready
	Deadline       time.Time       `json:"deadline,omitzero"`   // when leased: when the lease expires
	LastError      string          `json:"last_error,omitempty"`
}

// LeaseRequest asks for up to Max ready items of Queue, waiting up to Wait
// for the first one.
type LeaseRequest struct {
	Queue string
	Max   int
	Wait  time.Duration
}

// Lease is one leased item.
type Lease struct {
	ID       string
	Queue    string
	Payload  json.RawMessage
	Attempt  int
	Token    string
	Deadline time.Time
	Timeout  time.Duration
	// ReadySince is when the item became ready (its enqueue time, or the
	// end of its delay or backoff): the dispatch latency is measured from it.
	ReadySince time.Time
}

// Op is what a Completion does to a lease.
type Op int

// Completion operations.
const (
	Heartbeat Op = iota // extend the lease by the item's timeout
	Ack                 // done
	Nack                // failed: retry after a backoff (or RetryAfter), or dead after max attempts
	Release             // give the item back without counting the attempt (the lease never reached a worker)
)

func (o Op) String() string {
	switch o {
	case Heartbeat:
		return "heartbeat"
	case Ack:
		return "ack"
	case Nack:
		return "nack"
	case Release:
		return "release"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Completion is one heartbeat, ack, nack or release of a lease.
type Completion struct {
	Token      string
	Op         Op
	Error      string        // Nack: what went wrong
	RetryAfter time.Duration // Nack: 0 means the store's backoff
}

// CompletionResult answers one Completion.
type CompletionResult struct {
	ID       string
	State    State     // the item's state afterwards
	Deadline time.Time // Heartbeat: the new deadline
	Leased   time.Time // Ack, Nack: when the attempt started
	Queue    string
	Err      error // ErrStaleLease, ErrBadToken
}

// ListRequest pages through a queue's items in id order.
type ListRequest struct {
	Queue  string
	State  State  // "" for any
	Cursor string // the id after which to start; "" from the beginning
	Limit  int
}

// ListPage is one page of items; Next is the cursor of the next page, ""
// at the end.
type ListPage struct {
	Items []Item
	Next  string
}

// Stats counts a queue's items by state, with counters since the store
// started.
type Stats struct {
	Name        string    `json:"name"`
	Ready       int       `json:"ready"`
	Delayed     int       `json:"delayed"`
	Leased      int       `json:"leased"`
	Done        int       `json:"done"` // retained done items
	Dead        int       `json:"dead"`
	Cancelled   int       `json:"cancelled"`
	OldestReady time.Time `json:"-"` // since when the oldest ready item has been ready; zero when none

	Enqueued     uint64 `json:"enqueued_total"`
	Acked        uint64 `json:"acked_total"`
	Nacked       uint64 `json:"nacked_total"`
	Expired      uint64 `json:"lease_expired_total"`
	DeadLettered uint64 `json:"dead_lettered_total"`
	Stale        uint64 `json:"stale_completions_total"`
}

// Store keeps the queues. Every method is safe for concurrent use. A
// method that changes state returns only once the change is durable (for
// a durable store), or fails with ErrUnavailable and acknowledges nothing.
type Store interface {
	// Enqueue stores items, answering each; the error is for the whole
	// batch (ErrUnavailable).
	Enqueue(ctx context.Context, items []NewItem) ([]EnqueueResult, error)
	// Lease leases up to req.Max ready items, waiting up to req.Wait for
	// the first (returning none when nothing came in time or ctx ended).
	Lease(ctx context.Context, req LeaseRequest) ([]Lease, error)
	// Complete heartbeats, acks, nacks or releases leases, answering each.
	Complete(ctx context.Context, cs []Completion) ([]CompletionResult, error)
	// Get returns one item.
	Get(ctx context.Context, queue, id string) (Item, error)
	// List pages through a queue's items.
	List(ctx context.Context, req ListRequest) (ListPage, error)
	// Cancel cancels an item that is not done; a leased item's worker gets
	// ErrStaleLease when it completes.
	Cancel(ctx context.Context, queue, id string) (Item, error)
	// Replay moves dead items back to ready with their attempts reset: the
	// ids given, or every dead item of the queue when ids is empty. It
	// returns the ids replayed.
	Replay(ctx context.Context, queue string, ids []string) ([]string, error)
	// Stats returns the queue's counts; ErrNotFound for a queue never used.
	Stats(ctx context.Context, queue string) (Stats, error)
	// Queues lists the queues' names, sorted.
	Queues(ctx context.Context) ([]string, error)
	// Close flushes and closes the store.
	Close() error
}

// FormatToken returns the lease token of an item's attempt: id, attempt
// and a random part, as "<id>.<attempt>.<16 hex digits>".
func FormatToken(id uint64, attempt int, random uint64) string {
	var b [64]byte
	out := strconv.AppendUint(b[:0], id, 10)
	out = append(out, '.')
	out = strconv.AppendInt(out, int64(attempt), 10)
	out = append(out, '.')
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		out = append(out, hex[(random>>uint(i))&0xf])
	}
	return string(out)
}

// ParseToken splits a lease token into its id, attempt and random part.
func ParseToken(tok string) (id uint64, attempt int, random uint64, err error) {
	a, rest, ok1 := strings.Cut(tok, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(c) != 16 {
		return 0, 0, 0, fmt.Errorf("%w: %q is not <id>.<attempt>.<16 hex digits>", ErrBadToken, truncate(tok, 80))
	}
	id, err1 := strconv.ParseUint(a, 10, 64)
	at, err2 := strconv.ParseUint(b, 10, 31)
	r, err3 := strconv.ParseUint(c, 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || at == 0 || id == 0 {
		return 0, 0, 0, fmt.Errorf("%w: %q is not <id>.<attempt>.<16 hex digits>", ErrBadToken, truncate(tok, 80))
	}
	return id, int(at), r, nil
}

// ParseID parses an item id.
func ParseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%w: %q is not an item id", ErrNotFound, truncate(s, 80))
	}
	return id, nil
}

// ValidQueueName reports whether name can name a queue: 1 to 128 of
// [A-Za-z0-9._-].
func ValidQueueName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: queue name %q must be 1 to 128 characters", ErrInvalid, truncate(name, 80))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: queue name %q may only contain letters, digits, '.', '_' and '-'", ErrInvalid, truncate(name, 80))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
