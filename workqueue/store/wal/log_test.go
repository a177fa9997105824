package wal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podkit/podkit/workqueue/store"

	"github.com/podkit/podkit/internal/testdeps"
)

func open(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fill(t *testing.T, s *Store, q string, n, size int) []string {
	t.Helper()
	items := make([]store.NewItem, n)
	pad := strings.Repeat("x", size)
	for i := range items {
		items[i] = store.NewItem{Queue: q, Payload: json.RawMessage(fmt.Sprintf("%q", fmt.Sprint(i, pad)))}
	}
	res, err := s.Enqueue(context.Background(), items)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	ids := make([]string, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _, err := listDir(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return filepath.Join(dir, segName(segs[len(segs)-1]))
}

func TestTornTailIsTruncated(t *testing.T) {
	cases := []struct {
		name string
		tear func(valid []byte) []byte // what the crash left after the valid log
	}{
		{"half a header", func(v []byte) []byte { return []byte{0x10, 0, 0} }},
		{"header without body", func(v []byte) []byte { return appendFrame(nil, &record{typ: recCancel, id: 1})[:frameHeader] }},
		{"half a record", func(v []byte) []byte {
			f := appendFrame(nil, &record{typ: recEnqueue, id: 99, queue: "q", payload: []byte(`"abcdefghijkl"`)})
			return f[:len(f)-5]
		}},
		{"zeros", func(v []byte) []byte { return make([]byte, 4096) }},
		{"whole record with a bad CRC", func(v []byte) []byte {
			f := appendFrame(nil, &record{typ: recCancel, id: 1})
			f[len(f)-1] ^= 0xff
			return f
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			ids := fill(t, s, "q", 20, 10)
			s.Close()
			seg := lastSegment(t, dir)
			valid, _ := os.ReadFile(seg)
			f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(tc.tear(valid))
			f.Close()

			var logs strings.Builder
			s = open(t, dir, Options{Logger: slogTo(&logs)})
			if s.TornTails() != 1 {
				t.Fatalf("TornTails = %d, want 1", s.TornTails())
			}
			if !strings.Contains(logs.String(), "torn tail") {
				t.Errorf("no log line about the torn tail: %s", logs.String())
			}
			if fi, _ := os.Stat(seg); fi.Size() != int64(len(valid)) {
				t.Errorf("segment is %d bytes after truncation, want %d", fi.Size(), len(valid))
			}
			for _, id := range ids {
				if _, err := s.Get(context.Background(), "q", id); err != nil {
					t.Fatalf("item %s lost: %v", id, err)
				}
			}
			// The log is usable after the truncation.
			more := fill(t, s, "q", 1, 1)
			s.Close()
			s = open(t, dir, Options{})
			if _, err := s.Get(context.Background(), "q", more[0]); err != nil {
				t.Fatalf("item written after the truncation lost: %v", err)
			}
		})
	}
}

func TestCorruptionInTheMiddleIsAStartupError(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		fill(t, s, "q", 5, 50) // several batches
	}
	s.Close()
	seg := lastSegment(t, dir)
	buf, _ := os.ReadFile(seg)
	// Damage a byte inside the third record's body.
	off := 0
	for range 2 {
		_, n, ok := frameAt(buf, off)
		if !ok {
			t.Fatal("bad test log")
		}
		off += n
	}
	buf[off+frameHeader+3] ^= 0x55
	os.WriteFile(seg, buf, 0o600)

	_, err = Open(dir, Options{Logger: quiet()})
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open of a log damaged in the middle: %v, want a CorruptError", err)
	}
	if ce.Offset != int64(off) || ce.File != seg {
		t.Fatalf("CorruptError names %s offset %d, want %s offset %d", ce.File, ce.Offset, seg, off)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("offset %d", off)) {
		t.Fatalf("error does not name the offset: %v", err)
	}
	if fi, _ := os.Stat(seg); fi.Size() != int64(len(buf)) {
		t.Fatalf("the damaged log was modified")
	}
}

func TestCompactionBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentSize: 8 << 10})
	var keep []string
	for round := range 40 {
		ids := fill(t, s, "q", 20, 100)
		keep = append(keep, ids[0])
		ls, err := s.Lease(context.Background(), store.LeaseRequest{Queue: "q", Max: 100})
		if err != nil {
			t.Fatal(err)
		}
		var cs []store.Completion
		for _, l := range ls {
			if l.ID != ids[0] || round%2 == 0 {
				cs = append(cs, store.Completion{Token: l.Token, Op: store.Ack})
			}
		}
		if _, err := s.Complete(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(); err != nil && !strings.Contains(err.Error(), "pending") {
			t.Fatalf("Compact: %v", err)
		}
	}
	segs, snaps, _ := listDir(dir)
	if len(segs) > 2 || len(snaps) != 1 {
		t.Fatalf("after compaction: %d segments, %d snapshots; want at most 2 and 1", len(segs), len(snaps))
	}
	before, _ := s.Stats(context.Background(), "q")
	s.Close()
	s = open(t, dir, Options{})
	after, _ := s.Stats(context.Background(), "q")
	if before.Ready != after.Ready || before.Leased != after.Leased || before.Done != after.Done {
		t.Fatalf("state changed across compaction and restart: before %+v after %+v", before, after)
	}
	for i, id := range keep {
		it, err := s.Get(context.Background(), "q", id)
		if err != nil {
			t.Fatalf("item %s lost: %v", id, err)
		}
		want := store.Done
		if i%2 == 1 {
			want = store.Leased
		}
		if it.State != want {
			t.Fatalf("item %s is %s, want %s", id, it.State, want)
		}
	}
}

// mountTmpfs mounts a small tmpfs for disk-full tests (root only).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testdeps.Unavailable(t, fmt.Sprintf("cannot mount a tmpfs to fill: %v: %s", err, strings.TrimSpace(string(out))), "needs root")
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s: %v: %s", opts, err, out)
	}
}

func TestDiskFullRefusesAndLosesNothing(t *testing.T) {
	dir := mountTmpfs(t, "256k")
	s := open(t, dir, Options{RetryAfterFailure: 50 * time.Millisecond, SegmentSize: 1 << 30})
	var acked []string
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		items := []store.NewItem{{Queue: "q", Payload: json.RawMessage(fmt.Sprintf("%q", strings.Repeat("p", 2000)))}}
		res, err := s.Enqueue(context.Background(), items)
		if err != nil {
			refused = err
			break
		}
		acked = append(acked, res[0].ID)
	}
	if !errors.Is(refused, store.ErrUnavailable) {
		t.Fatalf("enqueue on a full disk: %v, want ErrUnavailable", refused)
	}
	if len(acked) == 0 {
		t.Fatal("nothing fit on the disk")
	}
	st, _ := s.Stats(context.Background(), "q")
	if st.Ready != len(acked) {
		t.Fatalf("after the failed write: ready=%d, want the %d acknowledged items (the refused one rolled back)", st.Ready, len(acked))
	}
	// Leases and acks of what is stored are refused too while down, then
	// work again once there is room.
	remount(t, dir, "size=4m")
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = s.Enqueue(context.Background(), []store.NewItem{{Queue: "q", Payload: json.RawMessage(`1`)}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("enqueue after space was freed: %v", err)
	}
	s.Close()
	s = open(t, dir, Options{})
	for _, id := range acked {
		if _, err := s.Get(context.Background(), "q", id); err != nil {
			t.Fatalf("acknowledged item %s lost: %v", id, err)
		}
	}
}

func TestReadOnlyDataDir(t *testing.T) {
	dir := mountTmpfs(t, "4m")
	s := open(t, dir, Options{})
	ids := fill(t, s, "q", 10, 10)
	s.Close()
	remount(t, dir, "ro")
	s = open(t, dir, Options{RetryAfterFailure: 50 * time.Millisecond})
	if _, err := s.Get(context.Background(), "q", ids[0]); err != nil {
		t.Fatalf("reading from a read-only data dir: %v", err)
	}
	for range 3 {
		_, err := s.Enqueue(context.Background(), []store.NewItem{{Queue: "q", Payload: json.RawMessage(`1`)}})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("enqueue on a read-only data dir: %v, want ErrUnavailable", err)
		}
		time.Sleep(60 * time.Millisecond) // past RetryAfterFailure: the write is tried again, and fails again
	}
	remount(t, dir, "rw")
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = s.Enqueue(context.Background(), []store.NewItem{{Queue: "q", Payload: json.RawMessage(`2`)}})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("enqueue after the data dir is writable again: %v", err)
	}
	s.Close()
	s = open(t, dir, Options{})
	st, _ := s.Stats(context.Background(), "q")
	if st.Ready != len(ids)+1 {
		t.Fatalf("ready=%d after restart, want %d", st.Ready, len(ids)+1)
	}
}

// Writes failing while compactions run: no deadlock, and every
// acknowledged item is there after a restart.
func TestDiskFullDuringCompaction(t *testing.T) {
	dir := mountTmpfs(t, "384k")
	s, err := Open(dir, Options{Logger: quiet(), RetryAfterFailure: 5 * time.Millisecond, SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		acked    []string
		failures atomic.Int32
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(3 * time.Second)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop) && failures.Load() < 40; i++ {
				res, err := s.Enqueue(context.Background(), []store.NewItem{{Queue: "q", Payload: json.RawMessage(fmt.Sprintf("%q", strings.Repeat("z", 300+g*50)))}})
				if err != nil {
					failures.Add(1)
					time.Sleep(2 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, res[0].ID)
				mu.Unlock()
				if i%3 == 0 {
					// Make room now and then, so the log keeps moving.
					ls, _ := s.Lease(context.Background(), store.LeaseRequest{Queue: "q", Max: 2})
					for _, l := range ls {
						s.Complete(context.Background(), []store.Completion{{Token: l.Token, Op: store.Ack}})
					}
				}
			}
		}()
	}
	wg.Wait()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hung after write failures during compactions")
	}
	if failures.Load() == 0 {
		t.Fatal("the disk never filled up: the test proves nothing")
	}
	s2 := open(t, dir, Options{})
	for _, id := range acked {
		if _, err := s2.Get(context.Background(), "q", id); err != nil {
			t.Fatalf("acknowledged item %s lost: %v", id, err)
		}
	}
	t.Logf("%d acknowledged, %d refused", len(acked), failures.Load())
}

// recordsIn decodes the record types in a segment file.
func recordsIn(t *testing.T, path string) []recType {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []recType
	for off := 0; off < len(buf); {
		body, n, ok := frameAt(buf, off)
		if !ok {
			t.Fatalf("%s: bad frame at %d", path, off)
		}
		out = append(out, recType(body[0]))
		off += n
	}
	return out
}

// TestLeaseRecordsReachTheLog: a lease is answered before its record is
// durable, and its record starts no write of its own; it goes with the
// next enqueue or ack, or with the tick's flush when nothing else comes.
func TestLeaseRecordsReachTheLog(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	fill(t, s, "q", 2, 10)
	ctx := context.Background()
	ls, err := s.Lease(ctx, store.LeaseRequest{Queue: "q", Max: 1})
	if err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	// Nothing else is written: the tick flushes the lease.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(recordsIn(t, lastSegment(t, dir)), recLease) {
		if time.Now().After(deadline) {
			t.Fatalf("the lease record was not written within 10s: %v", recordsIn(t, lastSegment(t, dir)))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A lease followed by its ack: once the ack is answered, both are on
	// disk, in that order.
	ls, err = s.Lease(ctx, store.LeaseRequest{Queue: "q", Max: 1})
	if err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	res, err := s.Complete(ctx, []store.Completion{{Token: ls[0].Token, Op: store.Ack}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("ack: %v %+v", err, res)
	}
	recs := recordsIn(t, lastSegment(t, dir))
	if want := []recType{recEnqueue, recEnqueue, recLease, recLease, recAck}; !slices.Equal(recs, want) {
		t.Fatalf("records on disk after the ack: %v, want %v", recs, want)
	}
}
