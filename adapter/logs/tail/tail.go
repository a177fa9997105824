// Package tail follows log files named by globs the way a log collector
// must: through rename rotation and copytruncate, without losing or
// repeating a line across restarts.
//
//   - Files are identified by device and inode, plus a fingerprint of their
//     first bytes, so a renamed file is still the same file and a reused
//     inode is a new one.
//   - A rotated (renamed or deleted) file is read to its end and kept open
//     until it has been idle for RotateWait: a rotated file with unread
//     bytes is never abandoned.
//   - A truncated file (copytruncate) is read again from the start. When
//     the glob also matches the copy, the copy — recognized by the
//     fingerprint of the original — is read from where the original was
//     left, so the lines between the last read and the truncation are not
//     lost, and the lines already read are not read twice.
//   - Positions are saved in StateDir only for lines whose events the
//     Handler has written (Source.Commit), atomically, so a restart resumes
//     exactly after the last line written.
//
// Tail is driven by one goroutine and calls its Handler from it.
package tail

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config configures a Tail.
type Config struct {
	Globs    []string // filepath.Glob patterns
	StateDir string   // "" keeps no checkpoints
	// ReadFromEnd starts files found at the first scan without a
	// checkpoint at their end instead of their beginning. Files that
	// appear later are always read from the beginning.
	ReadFromEnd bool
	// PollInterval is the wait after a pass that found nothing new.
	PollInterval time.Duration
	// ScanInterval is how often the globs are expanded again.
	ScanInterval time.Duration
	// RotateWait is how long a rotated or deleted file stays open after
	// it stopped growing, for a writer that has not reopened yet.
	RotateWait time.Duration
	// CheckpointInterval bounds how often the state file is written
	// (it is always written at the end of Run).
	CheckpointInterval time.Duration
	// MaxLineBytes cuts longer lines; the rest continues as a new line.
	MaxLineBytes int
	// ReadBytes is the size of each read.
	ReadBytes int
	// ExitOnEOF makes Run return once every file found has been read to
	// its end (a last line without a newline included): a batch run.
	ExitOnEOF bool
	Logger    *slog.Logger

	// Hooks for metrics; nil means none.
	OnRotate     func(kind string) // "rename", "delete", "truncate", "copy"
	OnCheckpoint func(err error)
	OnOpen       func(open int) // number of open files after a change
	// Paused, if set, is asked before each pass; while it returns true
	// nothing is read.
	Paused func() bool
}

// Defaults.
const (
	DefaultPollInterval       = 250 * time.Millisecond
	DefaultScanInterval       = time.Second
	DefaultRotateWait         = 5 * time.Second
	DefaultCheckpointInterval = time.Second
	DefaultMaxLineBytes       = 1 << 20
	DefaultReadBytes          = 256 << 10
	// FingerprintBytes is how much of a file's head identifies it.
	FingerprintBytes = 256
)

func (c *Config) defaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.RotateWait <= 0 {
		c.RotateWait = DefaultRotateWait
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.ReadBytes <= 0 {
		c.ReadBytes = DefaultReadBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Handler receives what Tail reads. All calls come from Run's goroutine.
// A Handler that also has a method Closed(*Source) is told when a rotated
// file is closed, after its Drain and Flush.
type Handler interface {
	// Line is one line without its newline (and without a trailing \r);
	// end is the file offset after it. line is valid only during the
	// call.
	Line(s *Source, line []byte, end int64) error
	// Idle says that s has nothing new right now (a multiline event that
	// waited long enough may be emitted).
	Idle(s *Source, now time.Time) error
	// Drain asks for everything held for s to be emitted: s is about to
	// be closed or to restart from offset 0.
	Drain(s *Source) error
	// Flush writes out what was emitted, then calls Commit on each source
	// with the end of its last written line.
	Flush() error
}

type fileID struct{ dev, ino uint64 }

// Source is one file being followed.
type Source struct {
	// Path is the name the file was last found under.
	Path string
	// Value is the Handler's own per-source state.
	Value any

	id        fileID
	f         *os.File
	readOff   int64 // bytes read into the buffer
	committed int64 // end of the last line written out
	carry     []byte
	head      []byte // the first bytes of the file, up to FingerprintBytes
	rotated   bool
	lastData  time.Time
	openedAt  time.Time
	seen      bool // found by the current scan
}

// Commit records that every line of s up to end has been written out.
func (s *Source) Commit(end int64) {
	if end > s.committed {
		s.committed = end
	}
}

// Tail follows the files.
type Tail struct {
	cfg Config
	h   Handler
	log *slog.Logger

	sources     map[fileID]*Source
	order       []*Source // open sources, in discovery order
	checkpoints map[fileID]Checkpoint
	truncated   []truncRecord
	firstScan   bool
	unmatched   map[string]bool // globs that matched no file at the first scan, until they do
	buf         []byte
	lastSave    time.Time
	dirty       bool
}

// truncRecord remembers where a copytruncated file was left, so its copy
// can be read from there.
type truncRecord struct {
	head   []byte
	offset int64
	at     time.Time
}

// New checks cfg and loads the checkpoints.
func New(cfg Config, h Handler) (*Tail, error) {
	cfg.defaults()
	if len(cfg.Globs) == 0 {
		return nil, errors.New("no file globs")
	}
	for _, g := range cfg.Globs {
		if _, err := filepath.Match(g, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", g, err)
		}
	}
	t := &Tail{
		cfg:         cfg,
		h:           h,
		log:         cfg.Logger,
		sources:     map[fileID]*Source{},
		checkpoints: map[fileID]Checkpoint{},
		firstScan:   true,
		buf:         make([]byte, cfg.ReadBytes+cfg.MaxLineBytes),
	}
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		cps, err := LoadState(cfg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		for _, c := range cps {
			t.checkpoints[fileID{c.Dev, c.Inode}] = c
		}
	}
	return t, nil
}

// Run follows the files until ctx ends. Then it reads what each open file
// holds at that moment, drains the Handler, flushes, writes the
// checkpoints, closes the files and returns. drain bounds that last step
// (nil: unbounded). It returns the Handler's first error.
func (t *Tail) Run(ctx context.Context, drain context.Context) (err error) {
	defer t.closeAll()
	defer func() {
		if err != nil && t.cfg.StateDir != "" {
			t.save(time.Now()) // what was written before the error
		}
	}()
	if err := t.scan(time.Now()); err != nil {
		return err
	}
	lastScan := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for ctx.Err() == nil {
		if t.cfg.Paused != nil && t.cfg.Paused() {
			if !sleep(ctx, timer, t.cfg.PollInterval) {
				break
			}
			continue
		}
		progressed, err := t.pass(time.Now(), 8*t.cfg.ReadBytes)
		if err != nil {
			return err
		}
		if err := t.flush(); err != nil {
			return err
		}
		now := time.Now()
		if t.dirty && now.Sub(t.lastSave) >= t.cfg.CheckpointInterval {
			t.save(now)
		}
		if now.Sub(lastScan) >= t.cfg.ScanInterval {
			if err := t.scan(now); err != nil {
				return err
			}
			lastScan = now
		}
		if !progressed && t.cfg.ExitOnEOF {
			for _, s := range t.order {
				if len(s.carry) > 0 {
					if err := t.h.Line(s, bytes.TrimSuffix(s.carry, []byte("\r")), s.readOff); err != nil {
						return err
					}
					s.carry = s.carry[:0]
				}
			}
			break
		}
		if !progressed && !sleep(ctx, timer, t.cfg.PollInterval) {
			break
		}
	}
	return t.finish(drain)
}

func sleep(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	timer.Reset(d)
	select {
	case <-ctx.Done():
		if !timer.Stop() {
			<-timer.C
		}
		return false
	case <-timer.C:
		return true
	}
}

// finish reads each open file up to its size at this moment, emits
// everything held, and saves the checkpoints.
func (t *Tail) finish(drain context.Context) error {
	if drain == nil {
		drain = context.Background()
	}
	var firstErr error
	for _, s := range t.order {
		if drain.Err() != nil {
			break
		}
		if fi, err := s.f.Stat(); err == nil {
			if _, _, err := t.readSource(s, fi.Size()-s.readOff); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	for _, s := range t.order {
		if err := t.h.Drain(s); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := t.flush(); err != nil && firstErr == nil {
		firstErr = err
	}
	if t.cfg.StateDir != "" {
		t.save(time.Now())
	}
	return firstErr
}

func (t *Tail) flush() error {
	if err := t.h.Flush(); err != nil {
		return err
	}
	t.dirty = true
	return nil
}

// pass reads what is new in every open file, at most budget bytes each,
// and checks idle files for rotation and truncation.
func (t *Tail) pass(now time.Time, budget int) (bool, error) {
	progressed := false
	for i := 0; i < len(t.order); i++ {
		s := t.order[i]
		if err := t.checkHead(s, now); err != nil {
			return progressed, err
		}
		n, truncated, err := t.readSource(s, int64(budget))
		if err != nil {
			return progressed, err
		}
		if truncated {
			progressed = true
			if err := t.onTruncate(s, now); err != nil {
				return progressed, err
			}
			continue
		}
		if n > 0 {
			progressed = true
			s.lastData = now
			continue
		}
		if err := t.h.Idle(s, now); err != nil {
			return progressed, err
		}
		closed, err := t.atEOF(s, now)
		if err != nil {
			return progressed, err
		}
		if closed {
			i--
		}
	}
	return progressed, nil
}

// readSource reads up to limit bytes of s and hands its complete lines to
// the Handler. After each read it checks that the head of the file is
// still the one it knows: if not, the file was truncated, the bytes just
// read may be the new content at the old offset, and they are dropped
// (truncated is then true; the old content's rest is in the copy).
func (t *Tail) readSource(s *Source, limit int64) (total int64, truncated bool, err error) {
	for total < limit {
		n := copy(t.buf, s.carry)
		s.carry = s.carry[:0]
		want := min(len(t.buf)-n, t.cfg.ReadBytes)
		m, err := s.f.Read(t.buf[n : n+want])
		if m > 0 && !t.headSame(s) {
			s.carry = append(s.carry, t.buf[:n]...)
			return total, true, nil
		}
		if m == 0 {
			s.carry = append(s.carry, t.buf[:n]...)
			if err != nil && err != io.EOF {
				return total, false, fmt.Errorf("reading %s: %w", s.Path, err)
			}
			return total, false, nil
		}
		s.readOff += int64(m)
		total += int64(m)
		data := t.buf[:n+m]
		base := s.readOff - int64(len(data))
		start := 0
		for {
			i := bytes.IndexByte(data[start:], '\n')
			if i < 0 {
				break
			}
			end := start + i
			line := data[start:end]
			if end > start && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			if err := t.h.Line(s, line, base+int64(end)+1); err != nil {
				return total, false, err
			}
			start = end + 1
		}
		rest := data[start:]
		for len(rest) >= t.cfg.MaxLineBytes {
			// A line longer than the limit: cut it, the rest continues.
			cut := rest[:t.cfg.MaxLineBytes]
			start += len(cut)
			if err := t.h.Line(s, cut, base+int64(start)); err != nil {
				return total, false, err
			}
			rest = data[start:]
		}
		s.carry = append(s.carry, rest...)
		// The head is what was read at the start of the file: the content
		// this Tail follows, whatever the file holds by now.
		if hl := int64(len(s.head)); hl < FingerprintBytes && base <= hl && hl < base+int64(len(data)) {
			end := min(FingerprintBytes, base+int64(len(data)))
			s.head = append(s.head, data[hl-base:end-base]...)
		}
	}
	return total, false, nil
}

// checkHead compares the head of s with the one it knows: different
// bytes mean the file was truncated (and maybe written again) since the
// last look.
func (t *Tail) checkHead(s *Source, now time.Time) error {
	if t.headSame(s) {
		return nil
	}
	return t.onTruncate(s, now)
}

// headSame reports whether the file still begins with s.head.
func (t *Tail) headSame(s *Source) bool {
	n := len(s.head)
	if n == 0 {
		return true
	}
	var cur [FingerprintBytes]byte
	m, err := s.f.ReadAt(cur[:n], 0)
	if err != nil && err != io.EOF {
		return true // cannot tell; the size check at EOF still applies
	}
	return m == n && bytes.Equal(cur[:n], s.head)
}

// atEOF handles a file that had nothing new: truncation, fingerprint
// growth, rotation, and closing a rotated file that stayed idle.
func (t *Tail) atEOF(s *Source, now time.Time) (closed bool, err error) {
	fi, err := s.f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", s.Path, err)
	}
	if fi.Size() < s.readOff {
		return false, t.onTruncate(s, now)
	}
	if !s.rotated {
		pfi, err := os.Stat(s.Path)
		switch {
		case err != nil:
			s.rotated = true
			t.rotate("delete", s, "file deleted; reading to its end")
		case idOf(pfi) != s.id:
			s.rotated = true
			t.rotate("rename", s, "file rotated (renamed); reading the old file to its end")
		}
		if s.rotated {
			s.lastData = now
		}
	}
	if s.rotated && now.Sub(s.lastData) >= t.cfg.RotateWait {
		return true, t.close(s, now)
	}
	return false, nil
}

func (t *Tail) rotate(kind string, s *Source, msg string) {
	t.log.Info(msg, "path", s.Path, "inode", s.id.ino, "offset", s.readOff)
	if t.cfg.OnRotate != nil {
		t.cfg.OnRotate(kind)
	}
}

// onTruncate restarts s from offset 0 after emitting what it held, and
// remembers where it was left for a copy of the old content.
func (t *Tail) onTruncate(s *Source, now time.Time) error {
	if err := t.h.Drain(s); err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return err
	}
	left := s.readOff - int64(len(s.carry))
	if len(s.head) > 0 {
		t.truncated = append(t.truncated, truncRecord{head: s.head, offset: left, at: now})
	}
	t.rotate("truncate", s, "file truncated; reading it again from the start")
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", s.Path, err)
	}
	s.readOff, s.committed, s.carry = 0, 0, s.carry[:0]
	s.head = nil // taken again from what is read from offset 0
	s.lastData = now
	t.dirty = true
	// A copy already found waits for this record; the next scan takes it.
	return nil
}

// close emits what s holds (a last line without a newline included),
// flushes, and closes the file; its position stays known while a glob
// still finds it.
func (t *Tail) close(s *Source, now time.Time) error {
	if len(s.carry) > 0 {
		line := s.carry
		if line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if err := t.h.Line(s, line, s.readOff); err != nil {
			return err
		}
		s.carry = s.carry[:0]
	}
	if err := t.h.Drain(s); err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return err
	}
	s.committed = s.readOff
	s.f.Close()
	s.f = nil
	if c, ok := t.h.(interface{ Closed(*Source) }); ok {
		c.Closed(s) // the Handler may let go of its state for s
	}
	for i, o := range t.order {
		if o == s {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
	t.log.Info("closed rotated file", "path", s.Path, "inode", s.id.ino, "offset", s.readOff)
	t.opened()
	t.dirty = true
	return nil
}

func (t *Tail) opened() {
	if t.cfg.OnOpen != nil {
		t.cfg.OnOpen(len(t.order))
	}
}

func (t *Tail) closeAll() {
	for _, s := range t.order {
		s.f.Close()
	}
	t.order = nil
}

// NoMatchError is Run's error when, with ExitOnEOF, globs match no
// regular file at the start: a batch run would otherwise end at once with
// nothing read, as if it had succeeded.
type NoMatchError struct {
	Globs []string
}

func (e *NoMatchError) Error() string {
	q := make([]string, len(e.Globs))
	for i, g := range e.Globs {
		q[i] = strconv.Quote(g)
	}
	return "no file matches " + strings.Join(q, ", ")
}

// matchesFile reports whether one of paths is a regular file.
func matchesFile(paths []string) bool {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// scan expands the globs: new files are opened, renamed ones get their new
// name, closed ones that grew are opened again. At the first scan a glob
// that matches no file is a warning (an error with ExitOnEOF); when it
// matches later, that is logged too.
func (t *Tail) scan(now time.Time) error {
	first := t.firstScan
	t.firstScan = false
	for _, s := range t.sources {
		s.seen = false
	}
	var paths []string
	var unmatched []string
	for _, g := range t.cfg.Globs {
		m, _ := filepath.Glob(g) // patterns were checked in New
		paths = append(paths, m...)
		switch {
		case first && !matchesFile(m):
			unmatched = append(unmatched, g)
			if !t.cfg.ExitOnEOF {
				t.log.Warn("no file matches the glob; looking again at every scan", "glob", g)
			}
			if t.unmatched == nil {
				t.unmatched = map[string]bool{}
			}
			t.unmatched[g] = true
		case t.unmatched[g] && matchesFile(m):
			delete(t.unmatched, g)
			t.log.Info("the glob matches a file now", "glob", g)
		}
	}
	if len(unmatched) > 0 && t.cfg.ExitOnEOF {
		return &NoMatchError{Globs: unmatched}
	}
	sort.Strings(paths)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		id := idOf(fi)
		if s, ok := t.sources[id]; ok {
			if s.seen {
				continue // the same file under two names
			}
			s.seen = true
			if s.f != nil {
				if s.Path != p && !s.rotated {
					if pfi, err := os.Stat(s.Path); err != nil || idOf(pfi) != s.id {
						s.rotated = true
						s.lastData = now
						t.rotate("rename", s, "file rotated (renamed to "+p+"); reading the old file to its end")
					}
					s.Path = p
				}
				continue
			}
			s.Path = p
			if fi.Size() == s.readOff {
				continue
			}
			// A closed file changed: the same file grown, or a reused inode.
			if err := t.reopen(s, p, fi, now); err != nil {
				t.log.Warn("cannot reopen file", "path", p, "error", err)
			}
			continue
		}
		if fi.Size() == 0 {
			// Nothing to read yet, and nothing to tell a new file from a
			// copy being written: look again at the next scan.
			continue
		}
		if err := t.discover(p, fi, id, first, now); err != nil {
			t.log.Warn("cannot open file", "path", p, "error", err)
		}
	}
	// Forget closed files no glob finds any more; an open file no glob
	// finds was rotated away or deleted (atEOF notices).
	for id, s := range t.sources {
		if !s.seen && s.f == nil {
			delete(t.sources, id)
			t.dirty = true
		}
	}
	// Truncation records wait a while for a late copy.
	keep := t.truncated[:0]
	for _, r := range t.truncated {
		if now.Sub(r.at) < time.Minute {
			keep = append(keep, r)
		}
	}
	t.truncated = keep
	return nil
}

// discover starts following a file the Tail does not know.
func (t *Tail) discover(p string, fi os.FileInfo, id fileID, first bool, now time.Time) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	head, err := readHead(f, nil)
	if err != nil {
		f.Close()
		return err
	}
	var offset int64
	cp, hasCP := t.checkpoints[id]
	switch {
	case hasCP && t.matches(f, cp):
		offset = cp.Offset
		delete(t.checkpoints, id)
	case t.copyOf(head) >= 0:
		i := t.copyOf(head)
		rec := t.truncated[i]
		t.truncated = append(t.truncated[:i], t.truncated[i+1:]...)
		offset = min(rec.offset, fi.Size())
		t.log.Info("found the copy of a truncated file; reading it from where the original was left", "path", p, "offset", offset)
		if t.cfg.OnRotate != nil {
			t.cfg.OnRotate("copy")
		}
	case t.copyOfLive(head):
		// A copy of a file still followed (or the start of one being
		// written): it holds nothing new until the original is truncated.
		f.Close()
		return nil
	case first && !hasCP && t.cfg.ReadFromEnd:
		offset = fi.Size()
	}
	if hasCP && offset == 0 {
		delete(t.checkpoints, id)
		t.log.Info("inode reused by a new file; reading it from the start", "path", p, "inode", id.ino)
	}
	if offset > fi.Size() {
		offset = 0 // smaller than its checkpoint: not the same content
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	s := &Source{Path: p, id: id, f: f, readOff: offset, committed: offset, head: head, lastData: now, openedAt: now, seen: true}
	t.sources[id] = s
	t.order = append(t.order, s)
	t.log.Info("following file", "path", p, "inode", id.ino, "offset", offset)
	t.opened()
	t.dirty = true
	return nil
}

// reopen follows a closed file again after it changed.
func (t *Tail) reopen(s *Source, p string, fi os.FileInfo, now time.Time) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	head, err := readHead(f, nil)
	if err != nil {
		f.Close()
		return err
	}
	offset := s.readOff
	if len(head) < len(s.head) || !bytes.Equal(head[:len(s.head)], s.head) || fi.Size() < offset {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	s.f, s.Path, s.readOff, s.committed, s.rotated, s.lastData = f, p, offset, offset, false, now
	s.head = head
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	t.order = append(t.order, s)
	t.opened()
	return nil
}

func (t *Tail) matches(f *os.File, cp Checkpoint) bool {
	head, err := readHead(f, nil)
	return err == nil && len(head) >= cp.FPLen && hex64(hash(head[:cp.FPLen])) == cp.FP
}

// minCopyFingerprint is the shortest head that may identify a copy.
const minCopyFingerprint = 64

// copyOf returns the truncation record whose head a new file's head
// begins with, or -1.
func (t *Tail) copyOf(head []byte) int {
	for i, r := range t.truncated {
		if bytes.HasPrefix(head, r.head) {
			return i
		}
	}
	return -1
}

// copyOfLive reports whether a new file's head is the head of a file
// still followed (or, shorter, the start of one: a copy being written):
// the head this Tail is reading, or the one now on disk, which may be
// content the Tail has not reached yet when it is behind. Such a copy is
// read only once the original is truncated, from where the original was
// left (see copyOf).
func (t *Tail) copyOfLive(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	same := func(live []byte) bool {
		n := min(len(head), len(live))
		if n < minCopyFingerprint && n < len(head) {
			return false
		}
		return bytes.Equal(head[:n], live[:n])
	}
	for _, s := range t.order {
		if same(s.head) {
			return true
		}
		if cur, err := readHead(s.f, nil); err == nil && same(cur) {
			return true
		}
	}
	return false
}

// save writes the checkpoints of every known file.
func (t *Tail) save(now time.Time) {
	if t.cfg.StateDir == "" {
		return
	}
	cps := make([]Checkpoint, 0, len(t.sources)+len(t.checkpoints))
	for _, s := range t.sources {
		cps = append(cps, Checkpoint{Path: s.Path, Dev: s.id.dev, Inode: s.id.ino, Offset: s.committed, FPLen: len(s.head), FP: hex64(hash(s.head))})
	}
	// Checkpoints of files not found yet (a glob that matches later) are kept.
	for _, c := range t.checkpoints {
		cps = append(cps, c)
	}
	sort.Slice(cps, func(i, j int) bool { return cps[i].Path < cps[j].Path })
	err := SaveState(t.cfg.StateDir, cps)
	if err != nil {
		t.log.Error("cannot write checkpoints", "state_dir", t.cfg.StateDir, "error", err)
	}
	if t.cfg.OnCheckpoint != nil {
		t.cfg.OnCheckpoint(err)
	}
	t.lastSave = now
	t.dirty = false
}

// readHead reads the first min(size, FingerprintBytes) bytes of f into
// dst (reusing it when it has room).
func readHead(f *os.File, dst []byte) ([]byte, error) {
	if cap(dst) < FingerprintBytes {
		dst = make([]byte, FingerprintBytes)
	}
	dst = dst[:FingerprintBytes]
	m, err := f.ReadAt(dst, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return dst[:m], nil
}

// hash is the checkpoint's fingerprint of a head (FNV-1a, 64 bits).
func hash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

func hex64(v uint64) string {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
}
