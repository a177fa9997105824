package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// batch is one group commit: every record appended while the previous
// write+fdatasync ran. done closes once the batch is durable (err nil) or
// has failed.
type batch struct {
	done chan struct{}
	err  error
}

// doneBatch is the batch of a store without a log.
var doneBatch = func() *batch {
	b := &batch{done: make(chan struct{})}
	close(b.done)
	return b
}()

// rotation asks the committer to start a new segment at a point in the
// pending bytes; done closes when the old segment is durable and the new
// one exists.
type rotation struct {
	at   int
	seq  uint64
	done chan struct{}
	err  error
}

// segmentLog is the write side of the log: appends from many goroutines
// are collected in buf and written and fdatasync'd together by one
// committer goroutine (group commit).
type segmentLog struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	buf     []byte
	cur     *batch
	nrec    int
	rot     *rotation
	rebuild bool // the store asked for its state to be rebuilt
	closed  bool
	kick    chan struct{}

	// Owned by the committer (and by reopen, under the store's lock while
	// the committer is parked in onFail).
	f    *os.File
	seq  uint64
	size atomic.Int64 // bytes in the current segment

	onFail    func(error)                               // called by the committer after a failed write
	onRebuild func()                                    // called by the committer when requestRebuild asked
	onCommit  func(records, bytes int, d time.Duration) // after each durable batch
	exited    chan struct{}
}

func segName(seq uint64) string  { return fmt.Sprintf("wal-%016x.log", seq) }
func snapName(seq uint64) string { return fmt.Sprintf("snap-%016x.snap", seq) }

func parseSeq(name, prefix, suffix string) (uint64, bool) {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, prefix), suffix), 16, 64)
	return v, err == nil
}

// listDir returns the segment and snapshot numbers in dir, ascending.
func listDir(dir string) (segs, snaps []uint64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if n, ok := parseSeq(e.Name(), "wal-", ".log"); ok {
			segs = append(segs, n)
		} else if n, ok := parseSeq(e.Name(), "snap-", ".snap"); ok {
			snaps = append(snaps, n)
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] < snaps[j] })
	return segs, snaps, nil
}

func (l *segmentLog) start() {
	l.kick = make(chan struct{}, 1)
	l.exited = make(chan struct{})
	go l.commitLoop()
}

// append frames r onto the pending batch and returns that batch. With
// kick the committer starts on it at once; without, r waits for the next
// kick or flush.
func (l *segmentLog) append(r *record, kick bool) *batch {
	l.mu.Lock()
	l.buf = appendFrame(l.buf, r)
	l.nrec++
	b := l.cur
	if b == nil {
		b = &batch{done: make(chan struct{})}
		l.cur = b
	}
	l.mu.Unlock()
	if kick {
		l.wake()
	}
	return b
}

// flush starts the committer if anything is pending.
func (l *segmentLog) flush() {
	l.mu.Lock()
	pending := l.cur != nil
	l.mu.Unlock()
	if pending {
		l.wake()
	}
}

func (l *segmentLog) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// requestRotate starts a new segment after everything appended so far; nil
// when a rotation is already pending.
func (l *segmentLog) requestRotate() *rotation {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rot != nil || l.closed {
		return nil
	}
	l.rot = &rotation{at: len(l.buf), done: make(chan struct{})}
	l.wake()
	return l.rot
}

// requestRebuild asks the committer to call onRebuild once it has written
// what it holds.
func (l *segmentLog) requestRebuild() {
	l.mu.Lock()
	l.rebuild = true
	l.mu.Unlock()
	l.wake()
}

func (l *segmentLog) commitLoop() {
	defer close(l.exited)
	var spare []byte
	for {
		<-l.kick
		l.mu.Lock()
		b, data, n, rot, closed, rebuild := l.cur, l.buf, l.nrec, l.rot, l.closed, l.rebuild
		l.cur, l.buf, l.nrec, l.rot, l.rebuild = nil, spare[:0], 0, nil, false
		l.mu.Unlock()
		if b != nil || rot != nil {
			start := time.Now()
			err := l.write(data, rot)
			if err != nil && l.onFail != nil {
				// Roll the state back before anyone hears of the failure, so
				// that a refused change is never visible afterwards.
				l.onFail(err)
			}
			if rot != nil {
				rot.err = err
				close(rot.done)
			}
			if b != nil {
				b.err = err
				close(b.done)
			}
			if err == nil && l.onCommit != nil && n > 0 {
				l.onCommit(n, len(data), time.Since(start))
			}
		}
		spare = data
		if rebuild && !closed && l.onRebuild != nil {
			l.onRebuild()
		}
		if closed {
			return
		}
	}
}

// write writes data to the current segment (starting a new one at rot) and
// makes it durable.
func (l *segmentLog) write(data []byte, rot *rotation) error {
	if l.f == nil {
		return errors.New("log is not open")
	}
	first := data
	if rot != nil {
		first = data[:rot.at]
	}
	if len(first) > 0 {
		if err := l.writeSync(first); err != nil {
			return err
		}
	}
	if rot == nil {
		return nil
	}
	next := l.seq + 1
	f, err := os.OpenFile(filepath.Join(l.dir, segName(next)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("starting log segment %s: %w", segName(next), err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	l.f.Close()
	l.f, l.seq = f, next
	l.size.Store(0)
	rot.seq = next
	if rest := data[rot.at:]; len(rest) > 0 {
		return l.writeSync(rest)
	}
	return nil
}

func (l *segmentLog) writeSync(p []byte) error {
	n, err := l.f.Write(p)
	l.size.Add(int64(n))
	if err != nil {
		return fmt.Errorf("writing %s: %w", segName(l.seq), err)
	}
	if err := datasync(l.f); err != nil {
		return fmt.Errorf("fdatasync %s: %w", segName(l.seq), err)
	}
	return nil
}

// failPending fails everything appended but not yet written (after a
// failed write, those records were derived from state that is being
// rebuilt).
func (l *segmentLog) failPending(err error) {
	l.mu.Lock()
	b, rot := l.cur, l.rot
	l.cur, l.buf, l.nrec, l.rot = nil, l.buf[:0], 0, nil
	l.mu.Unlock()
	if b != nil {
		b.err = err
		close(b.done)
	}
	if rot != nil {
		rot.err = err
		close(rot.done)
	}
}

// close flushes what is pending and stops the committer.
func (l *segmentLog) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.wake()
	<-l.exited
	if l.f != nil {
		err := l.f.Close()
		l.f = nil
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
