package workqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/podkit/podkit/workqueue/store"
)

// ItemRequest is one item as the HTTP API takes it.
type ItemRequest struct {
	Payload        json.RawMessage `json:"payload"`
	Priority       int64           `json:"priority,omitempty"`
	Delay          string          `json:"delay,omitempty"`      // a duration such as "30s"
	NotBefore      string          `json:"not_before,omitempty"` // RFC 3339
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	MaxAttempts    int             `json:"max_attempts,omitempty"`
	Timeout        string          `json:"timeout,omitempty"` // a duration; default "30s"
}

// requestError is a bad request: an HTTP status and a message.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// decodedItem is one item of an enqueue body: the store item, or why it
// was refused.
type decodedItem struct {
	item   store.NewItem
	status int // 0 when valid
	err    string
}

// decodeEnqueue parses an enqueue body: one JSON object, a JSON array of
// objects, or NDJSON (one object per line). batch reports whether the
// answer is per item. A body that is not well-formed JSON is refused as a
// whole (an error naming the line); an item that is well-formed but
// invalid is refused alone.
func decodeEnqueue(body []byte, queue string, ndjson bool, maxPayload int64, now time.Time) (items []decodedItem, batch bool, err error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, badRequest("empty body: want a JSON object, a JSON array of objects, or NDJSON")
	}
	var raws []json.RawMessage
	var lines []int
	switch trimmed[0] {
	case '[':
		batch = true
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&raws); err != nil {
			return nil, true, syntaxError(body, dec, err, "")
		}
		if dec.More() {
			return nil, true, badRequest("line %d: data after the JSON array", lineAt(body, dec.InputOffset()))
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, true, badRequest("line %d: data after the JSON array", lineAt(body, dec.InputOffset()))
		}
		if len(raws) == 0 {
			return nil, true, badRequest("empty array: nothing to enqueue")
		}
	case '{':
		dec := json.NewDecoder(bytes.NewReader(body))
		for {
			start := dec.InputOffset()
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, len(raws) > 0 || ndjson, syntaxError(body, dec, err, fmt.Sprintf("item %d: ", len(raws)+1))
			}
			if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
				return nil, true, badRequest("line %d: item %d is not a JSON object", lineAt(body, start+1), len(raws)+1)
			}
			raws = append(raws, raw)
			lines = append(lines, lineAt(body, start+int64(len(body[start:])-len(bytes.TrimLeft(body[start:], " \t\r\n")))))
		}
		batch = ndjson || len(raws) > 1
	default:
		return nil, false, badRequest("line %d: want a JSON object, a JSON array of objects, or NDJSON, not %q…", lineAt(body, int64(len(body)-len(trimmed))), firstRune(trimmed))
	}
	items = make([]decodedItem, len(raws))
	for i, raw := range raws {
		where := fmt.Sprintf("item %d", i+1)
		if lines != nil && batch {
			where = fmt.Sprintf("line %d", lines[i])
		}
		ni, status, msg := decodeItem(raw, queue, maxPayload, now)
		if status != 0 {
			if batch {
				msg = where + ": " + msg
			}
			items[i] = decodedItem{status: status, err: msg}
			continue
		}
		items[i] = decodedItem{item: ni}
	}
	return items, batch, nil
}

func firstRune(b []byte) string {
	s := string(b)
	if len(s) > 10 {
		s = s[:10]
	}
	return s
}

// decodeItem turns one JSON object into a store item.
func decodeItem(raw json.RawMessage, queue string, maxPayload int64, now time.Time) (store.NewItem, int, string) {
	var r ItemRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return store.NewItem{}, 400, fieldError(err)
	}
	return r.toStore(queue, maxPayload, now)
}

func (r *ItemRequest) toStore(queue string, maxPayload int64, now time.Time) (store.NewItem, int, string) {
	ni := store.NewItem{Queue: queue, Payload: r.Payload, Priority: r.Priority, IdempotencyKey: r.IdempotencyKey, MaxAttempts: r.MaxAttempts}
	if len(r.Payload) == 0 {
		ni.Payload = json.RawMessage("null")
	}
	if int64(len(r.Payload)) > maxPayload {
		return ni, 413, fmt.Sprintf("payload is %d bytes, over --max-payload (%d bytes)", len(r.Payload), maxPayload)
	}
	var errs []string
	if r.Delay != "" && r.NotBefore != "" {
		errs = append(errs, "give delay or not_before, not both")
	}
	if r.Delay != "" {
		d, err := time.ParseDuration(r.Delay)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Sprintf("delay %q is not a duration such as \"30s\"", r.Delay))
		} else if d > 0 {
			ni.NotBefore = now.Add(d)
		}
	}
	if r.NotBefore != "" {
		t, err := time.Parse(time.RFC3339Nano, r.NotBefore)
		if err != nil {
			errs = append(errs, fmt.Sprintf("not_before %q is not an RFC 3339 time such as \"2030-01-02T15:04:05Z\"", r.NotBefore))
		} else {
			ni.NotBefore = t
		}
	}
	if r.Timeout != "" {
		d, err := time.ParseDuration(r.Timeout)
		if err != nil || d < time.Millisecond || d > 24*time.Hour {
			errs = append(errs, fmt.Sprintf("timeout %q is not a duration from 1ms to 24h", r.Timeout))
		} else {
			ni.Timeout = d
		}
	}
	if r.MaxAttempts < 0 || r.MaxAttempts > 1000 {
		errs = append(errs, fmt.Sprintf("max_attempts %d is not from 1 to 1000", r.MaxAttempts))
	}
	if len(r.IdempotencyKey) > 1024 {
		errs = append(errs, "idempotency_key is longer than 1024 bytes")
	}
	if len(errs) > 0 {
		return ni, 400, strings.Join(errs, "; ")
	}
	return ni, 0, ""
}

// fieldError rewrites encoding/json's errors to name the field.
func fieldError(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		if ute.Field != "" {
			return fmt.Sprintf("field %q: want %s, got JSON %s", ute.Field, ute.Type, ute.Value)
		}
		return fmt.Sprintf("want a JSON object, got JSON %s", ute.Value)
	case errors.As(err, &se):
		return "malformed JSON: " + se.Error()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

func syntaxError(body []byte, dec *json.Decoder, err error, prefix string) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		off = int64(len(body))
	}
	return badRequest("line %d: %s%s", lineAt(body, off), prefix, fieldError(err))
}

// lineAt is the 1-based line of byte offset off.
func lineAt(body []byte, off int64) int {
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(body[:off], []byte{'\n'}) + 1
}

// leaseRequest is the optional body of POST /queues/{q}/lease.
type leaseRequest struct {
	WaitSeconds *float64 `json:"wait_seconds"`
	MaxItems    *int     `json:"max_items"`
}

const (
	maxWait      = 5 * time.Minute
	maxLeaseMany = 1000
)

func decodeLease(body []byte) (wait time.Duration, max int, batch bool, err error) {
	var r leaseRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return 0, 0, false, badRequest("%s", fieldError(err))
		}
		if dec.More() {
			return 0, 0, false, badRequest("data after the JSON object")
		}
	}
	max = 1
	if r.MaxItems != nil {
		batch = true
		max = *r.MaxItems
		if max < 1 || max > maxLeaseMany {
			return 0, 0, false, badRequest("max_items %d is not from 1 to %d", max, maxLeaseMany)
		}
	}
	if r.WaitSeconds != nil {
		w := *r.WaitSeconds
		if math.IsNaN(w) || w < 0 || w > maxWait.Seconds() {
			return 0, 0, false, badRequest("wait_seconds %v is not from 0 to %d", w, int(maxWait.Seconds()))
		}
		wait = time.Duration(w * float64(time.Second))
	}
	return wait, max, batch, nil
}

// completionItem is one lease in a batch heartbeat, ack or nack, or the body
// of a single nack.
type completionItem struct {
	Token      string          `json:"token"`
	Error      string          `json:"error"`
	RetryAfter json.RawMessage `json:"retry_after"` // "10s" or a number of seconds
}

type completionBatch struct {
	Tokens []string         `json:"tokens"`
	Items  []completionItem `json:"items"`
}

func parseRetryAfter(raw json.RawMessage) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			return 0, fmt.Errorf("retry_after %q is not a duration such as \"10s\" (at most 720h)", s)
		}
		return d, nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 30*24*3600 {
		return 0, fmt.Errorf("retry_after %s is not a number of seconds or a duration string", raw)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// decodeSingleNack reads the body of POST /leases/{token}/nack: a JSON
// object {"error", "retry_after"}, or plain text that is the error.
func decodeSingleNack(body []byte, contentType string) (store.Completion, error) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return store.Completion{Op: store.Nack}, nil
	}
	if t[0] != '{' && !strings.HasPrefix(contentType, "application/json") {
		return store.Completion{Op: store.Nack, Error: string(body)}, nil
	}
	var ci completionItem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ci); err != nil {
		return store.Completion{}, badRequest("%s", fieldError(err))
	}
	if ci.Token != "" {
		return store.Completion{}, badRequest("field \"token\": the token is in the URL")
	}
	d, err := parseRetryAfter(ci.RetryAfter)
	if err != nil {
		return store.Completion{}, badRequest("%v", err)
	}
	return store.Completion{Op: store.Nack, Error: ci.Error, RetryAfter: d}, nil
}

// decodeBatchCompletion reads POST /leases/{op}: {"tokens": [...]} or
// {"items": [{"token", "error", "retry_after"}]}.
func decodeBatchCompletion(body []byte, op store.Op) ([]store.Completion, error) {
	var b completionBatch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		if err == io.EOF {
			return nil, badRequest(`empty body: want {"tokens": [...]} or {"items": [{"token": ...}]}`)
		}
		return nil, badRequest("%s", fieldError(err))
	}
	if dec.More() {
		return nil, badRequest("data after the JSON object")
	}
	n := len(b.Tokens) + len(b.Items)
	if n == 0 {
		return nil, badRequest(`no leases: want {"tokens": [...]} or {"items": [{"token": ...}]}`)
	}
	if n > 10000 {
		return nil, &requestError{status: 413, msg: fmt.Sprintf("%d leases in one request; at most 10000", n)}
	}
	out := make([]store.Completion, 0, n)
	for _, t := range b.Tokens {
		out = append(out, store.Completion{Token: t, Op: op})
	}
	for i, it := range b.Items {
		d, err := parseRetryAfter(it.RetryAfter)
		if err != nil {
			return nil, badRequest("items[%d]: %v", i, err)
		}
		out = append(out, store.Completion{Token: it.Token, Op: op, Error: it.Error, RetryAfter: d})
	}
	return out, nil
}
