package wal

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/podkit/podkit/workqueue/store"
)

// FuzzReplay opens a store over an arbitrary log segment and works it: a
// damaged log is a start-up error, and whatever loads is served without a
// panic.
func FuzzReplay(f *testing.F) {
	// Seeds: the segment of a store that went through every record type.
	dir := f.TempDir()
	s, err := Open(dir, Options{Logger: quiet(), BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	s.Enqueue(ctx, []store.NewItem{
		{Queue: "a", Payload: json.RawMessage(`{"n":1}`), IdempotencyKey: "k"},
		{Queue: "a", Payload: json.RawMessage(`2`), MaxAttempts: 1},
		{Queue: "b", Payload: json.RawMessage(`3`), NotBefore: time.Now().Add(time.Hour)},
		{Queue: "b", Payload: json.RawMessage(`4`)},
	})
	ls, _ := s.Lease(ctx, store.LeaseRequest{Queue: "a", Max: 2})
	if len(ls) == 2 {
		s.Complete(ctx, []store.Completion{{Token: ls[0].Token, Op: store.Heartbeat}, {Token: ls[0].Token, Op: store.Ack}, {Token: ls[1].Token, Op: store.Nack, Error: "x"}})
		s.Replay(ctx, "a", []string{ls[1].ID})
	}
	ls, _ = s.Lease(ctx, store.LeaseRequest{Queue: "b", Max: 1})
	if len(ls) == 1 {
		s.Complete(ctx, []store.Completion{{Token: ls[0].Token, Op: store.Release}})
		s.Cancel(ctx, "b", ls[0].ID)
	}
	s.Close()
	seg, err := os.ReadFile(filepath.Join(dir, segName(1)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)/2])
	f.Add(appendFrame(nil, &record{typ: recLease, id: 1, attempt: 1}))

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Logger: quiet(), BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
		if err != nil {
			return // refused to start: fine
		}
		queues, _ := s.Queues(ctx)
		for _, q := range queues {
			if store.ValidQueueName(q) != nil {
				continue
			}
			s.Stats(ctx, q)
			s.List(ctx, store.ListRequest{Queue: q})
			ls, _ := s.Lease(ctx, store.LeaseRequest{Queue: q, Max: 10})
			var cs []store.Completion
			for i, l := range ls {
				cs = append(cs, store.Completion{Token: l.Token, Op: []store.Op{store.Ack, store.Nack, store.Heartbeat, store.Release}[i%4]})
			}
			s.Complete(ctx, cs)
			s.Replay(ctx, q, nil)
			s.Enqueue(ctx, []store.NewItem{{Queue: q, Payload: json.RawMessage(`1`), IdempotencyKey: "k"}})
		}
		s.Compact()
		// What was compacted loads again.
		s.Close()
		s, err = Open(dir, Options{Logger: quiet()})
		if err != nil {
			t.Fatalf("a store that loaded and compacted does not load again: %v", err)
		}
		s.Close()
	})
}
