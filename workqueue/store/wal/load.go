package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// snapMagic starts every snapshot file.
var snapMagic = []byte("podkit-queue-snapshot-v1\n")

// CorruptError is a damaged log or snapshot: the store refuses to start
// rather than lose what follows the damage.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: corrupt at offset %d: %s; refusing to start so that nothing after it is lost (restore the data directory from a backup, or move the file away to accept the loss)", e.File, e.Offset, e.Reason)
}

// readOnlyError: the state loaded, but the log cannot be opened for
// writing.
type readOnlyError struct{ err error }

func (e *readOnlyError) Error() string {
	return fmt.Sprintf("the log cannot be opened for writing: %v", e.err)
}

// load rebuilds st from the snapshot and segments in dir, truncates a torn
// tail of the last segment, and opens the last segment for appending.
func (s *Store) load() error {
	dir := s.dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	segs, snaps, err := listDir(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st := newState(s.now)
	var base uint64 = 1
	if len(snaps) > 0 {
		base = snaps[len(snaps)-1]
		if err := loadSnapshot(filepath.Join(dir, snapName(base)), st); err != nil {
			return err
		}
	}
	var replay []uint64
	for _, n := range segs {
		if n >= base {
			replay = append(replay, n)
		}
	}
	if len(replay) > 0 && replay[0] != base {
		return &CorruptError{File: filepath.Join(dir, segName(base)), Reason: fmt.Sprintf("log segment missing (the oldest is %s and no snapshot covers what precedes it)", segName(replay[0]))}
	}
	for i := 1; i < len(replay); i++ {
		if replay[i] != replay[i-1]+1 {
			return &CorruptError{File: filepath.Join(dir, segName(replay[i-1]+1)), Reason: "log segment missing"}
		}
	}
	var size int64
	for i, n := range replay {
		last := i == len(replay)-1
		sz, err := s.replaySegment(filepath.Join(dir, segName(n)), st, last)
		if err != nil {
			return err
		}
		size = sz
	}
	cur := base
	if len(replay) > 0 {
		cur = replay[len(replay)-1]
	}
	s.st = st
	s.wl.seq = cur
	s.wl.size.Store(size)
	f, err := os.OpenFile(filepath.Join(dir, segName(cur)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil && len(replay) == 0 {
		if err = syncDir(dir); err != nil {
			f.Close()
		}
	}
	if err != nil {
		// Read-only or full: serve what is stored, refuse writes, and try
		// again later (the next write after RetryAfterFailure reloads).
		return &readOnlyError{err: err}
	}
	// Leftovers of an interrupted compaction.
	for _, n := range segs {
		if n < base {
			os.Remove(filepath.Join(dir, segName(n)))
		}
	}
	for _, n := range snaps {
		if n < base {
			os.Remove(filepath.Join(dir, snapName(n)))
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmps) > 0 {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	s.wl.f = f
	return nil
}

// replaySegment applies every record of one segment and returns its size
// after any truncation.
func (s *Store) replaySegment(path string, st *state, last bool) (int64, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading log: %w", err)
	}
	off := 0
	for off < len(buf) {
		body, n, ok := frameAt(buf, off)
		if !ok {
			if p, found := validChainAfter(buf, off); found || !last {
				reason := "bad record frame (length or CRC)"
				if found {
					reason += fmt.Sprintf("; valid records follow at offset %d", p)
				} else {
					reason += "; this is not the newest segment"
				}
				return 0, &CorruptError{File: path, Offset: int64(off), Reason: reason}
			}
			// A torn tail: the last write before a crash did not finish.
			// Nothing in it was acknowledged (acks wait for the fdatasync).
			s.log.Warn("truncating torn tail of the log (an unfinished write before a crash; nothing in it was acknowledged)",
				"file", path, "offset", off, "bytes", len(buf)-off)
			if err := os.Truncate(path, int64(off)); err != nil {
				return 0, fmt.Errorf("truncating torn tail of %s: %w", path, err)
			}
			s.tornTails++
			return int64(off), nil
		}
		r, err := decodeRecord(body)
		if err != nil {
			return 0, &CorruptError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		r.payload = bytes.Clone(r.payload)
		if err := st.apply(&r); err != nil {
			return 0, &CorruptError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		off += n
	}
	return int64(off), nil
}

func loadSnapshot(path string, st *state) error {
	buf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading snapshot: %w", err)
	}
	if !bytes.HasPrefix(buf, snapMagic) {
		return &CorruptError{File: path, Reason: "not a podkit queue snapshot (bad header)"}
	}
	off := len(snapMagic)
	sawEnd := false
	for off < len(buf) {
		body, n, ok := frameAt(buf, off)
		if !ok {
			return &CorruptError{File: path, Offset: int64(off), Reason: "bad record frame (length or CRC)"}
		}
		r, err := decodeRecord(body)
		if err != nil {
			return &CorruptError{File: path, Offset: int64(off), Reason: err.Error()}
		}
		if r.typ == recMeta && r.nextID == 0 {
			sawEnd = true
		} else {
			r.payload = bytes.Clone(r.payload)
			if err := st.apply(&r); err != nil {
				return &CorruptError{File: path, Offset: int64(off), Reason: err.Error()}
			}
		}
		off += n
	}
	if !sawEnd {
		return &CorruptError{File: path, Offset: int64(off), Reason: "snapshot ends early (no end record)"}
	}
	return nil
}

// writeSnapshot writes recs as snapshot seq: to a temporary file, fsync,
// rename, fsync the directory.
func writeSnapshot(dir string, seq uint64, recs []record) error {
	final := filepath.Join(dir, snapName(seq))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := append([]byte(nil), snapMagic...)
	for i := range recs {
		buf = appendFrame(buf, &recs[i])
		if len(buf) > 1<<20 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = appendFrame(buf, &record{typ: recMeta}) // end marker: nextID 0
	if _, err := f.Write(buf); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// removeBefore deletes segments and snapshots older than seq.
func removeBefore(dir string, seq uint64) error {
	segs, snaps, err := listDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range segs {
		if n < seq {
			if err := os.Remove(filepath.Join(dir, segName(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for _, n := range snaps {
		if n < seq {
			if err := os.Remove(filepath.Join(dir, snapName(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
