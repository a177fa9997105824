package workqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/podkit/podkit/workqueue/store"
)

// sourceItem is one item of a source container's ItemList.
type sourceItem struct {
	Name string `json:"name"`
	ItemRequest
}

type itemList struct {
	Kind  string            `json:"kind"`
	Items []json.RawMessage `json:"items"`
}

// decodeSource parses a source container's answer:
// {"kind":"ItemList","items":[{"name":..., "payload":..., ...}]}.
func decodeSource(body []byte, queue string, maxPayload int64, now time.Time) ([]string, []store.NewItem, error) {
	var l itemList
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&l); err != nil {
		return nil, nil, fmt.Errorf("%s", fieldError(err))
	}
	if l.Kind != "ItemList" {
		return nil, nil, fmt.Errorf("field \"kind\" is %q, want \"ItemList\"", l.Kind)
	}
	names := make([]string, 0, len(l.Items))
	items := make([]store.NewItem, 0, len(l.Items))
	seen := map[string]bool{}
	for i, raw := range l.Items {
		var si sourceItem
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&si); err != nil {
			return nil, nil, fmt.Errorf("items[%d]: %s", i, fieldError(err))
		}
		if si.Name == "" {
			return nil, nil, fmt.Errorf("items[%d]: field \"name\" is required (it is how items are told apart)", i)
		}
		if seen[si.Name] {
			return nil, nil, fmt.Errorf("items[%d]: name %q appears twice", i, si.Name)
		}
		seen[si.Name] = true
		if si.IdempotencyKey != "" {
			return nil, nil, fmt.Errorf("items[%d]: field \"idempotency_key\" is set from the name; leave it out", i)
		}
		si.IdempotencyKey = "source:" + si.Name
		ni, status, msg := si.ItemRequest.toStore(queue, maxPayload, now)
		if status != 0 {
			return nil, nil, fmt.Errorf("items[%d] (%q): %s", i, si.Name, msg)
		}
		names = append(names, si.Name)
		items = append(items, ni)
	}
	return names, items, nil
}

// sourcePoller polls a source container and enqueues items not seen
// before. Each item's idempotency key is "source:<name>", so an item seen
// before a restart is not queued twice while it is retained.
type sourcePoller struct {
	url        string
	queue      string
	store      store.Store
	log        *slog.Logger
	maxPayload int64
	seen       map[string]bool
	client     http.Client
	lastErr    string
}

func (p *sourcePoller) poll(ctx context.Context) {
	if err := p.pollOnce(ctx); err != nil {
		if err.Error() != p.lastErr {
			p.log.Warn("polling --source failed", "source", p.url, "error", err)
		}
		p.lastErr = err.Error()
		return
	}
	p.lastErr = ""
}

func (p *sourcePoller) pollOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	names, items, err := decodeSource(body, p.queue, p.maxPayload, time.Now())
	if err != nil {
		return fmt.Errorf("bad ItemList: %w", err)
	}
	var newNames []string
	var newItems []store.NewItem
	for i, n := range names {
		if !p.seen[n] {
			newNames = append(newNames, n)
			newItems = append(newItems, items[i])
		}
	}
	if len(newItems) == 0 {
		return nil
	}
	res, err := p.store.Enqueue(ctx, newItems)
	if err != nil {
		return err
	}
	added := 0
	for i, r := range res {
		if r.Err != nil {
			p.log.Warn("source item refused", "name", newNames[i], "error", r.Err)
			continue
		}
		p.seen[newNames[i]] = true
		if !r.Duplicate {
			added++
		}
	}
	if added > 0 {
		p.log.Info("queued items from --source", "source", p.url, "queue", p.queue, "new", added)
	}
	return nil
}
