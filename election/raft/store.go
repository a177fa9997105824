package raft

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// fileStore is raft's LogStore and StableStore in one append-only journal
// file, fsync'd on every write and replayed into memory when opened. An
// election's log is tiny (one entry per leadership change), so the journal
// is rewritten compactly once it holds mostly dead records. A torn record
// at the tail (a crash mid-write) is cut off on open; it was never
// acknowledged to raft.
type fileStore struct {
	mu   sync.Mutex
	path string
	f    *os.File
	w    *bufio.Writer

	logs        map[uint64]*hraft.Log
	first, last uint64
	kv          map[string][]byte
	records     int // records in the journal
}

var (
	_ hraft.LogStore    = (*fileStore)(nil)
	_ hraft.StableStore = (*fileStore)(nil)
)

// record is one journal entry.
type record struct {
	Op   string       `json:"op"` // "logs", "delete", "set"
	Logs []*hraft.Log `json:"logs,omitempty"`
	Min  uint64       `json:"min,omitempty"`
	Max  uint64       `json:"max,omitempty"`
	Key  string       `json:"key,omitempty"`
	Val  []byte       `json:"val,omitempty"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errNotFound's text is what hashicorp/raft tests for.
var errNotFound = errors.New("not found")

// compactAfter is the journal size, in records, beyond which a write
// rewrites it when most records are dead.
const compactAfter = 1024

func openFileStore(path string) (*fileStore, error) {
	s := &fileStore{path: path, logs: map[uint64]*hraft.Log{}, kv: map[string][]byte{}}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	good, err := s.replay(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: cutting a torn record at offset %d: %w", path, good, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s.f, s.w = f, bufio.NewWriter(f)
	return s, nil
}

// replay applies the journal's records and returns the offset after the
// last intact one.
func (s *fileStore) replay(f *os.File) (int64, error) {
	r := bufio.NewReader(f)
	var off int64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, nil // end, or a torn header
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > 64<<20 {
			return off, nil
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return off, nil
		}
		if crc32.Checksum(buf, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return off, nil
		}
		var rec record
		if err := json.Unmarshal(buf, &rec); err != nil {
			return 0, fmt.Errorf("%s: record at offset %d: %w", s.path, off, err)
		}
		s.apply(&rec)
		s.records++
		off += 8 + int64(n)
	}
}

func (s *fileStore) apply(rec *record) {
	switch rec.Op {
	case "logs":
		for _, l := range rec.Logs {
			s.logs[l.Index] = l
			if s.first == 0 || l.Index < s.first {
				s.first = l.Index
			}
			if l.Index > s.last {
				s.last = l.Index
			}
		}
	case "delete":
		for i := range s.logs {
			if i >= rec.Min && i <= rec.Max {
				delete(s.logs, i)
			}
		}
		s.first, s.last = 0, 0
		for i := range s.logs {
			if s.first == 0 || i < s.first {
				s.first = i
			}
			if i > s.last {
				s.last = i
			}
		}
	case "set":
		s.kv[rec.Key] = rec.Val
	}
}

// write appends rec durably, then applies it.
func (s *fileStore) write(rec *record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("raft store closed")
	}
	if err := s.append(s.w, rec); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.apply(rec)
	s.records++
	if s.records > compactAfter && s.records > 4*(len(s.logs)+len(s.kv)) {
		if err := s.compact(); err != nil {
			return fmt.Errorf("compacting %s: %w", s.path, err)
		}
	}
	return nil
}

func (s *fileStore) append(w io.Writer, rec *record) error {
	buf, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(buf)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(buf, crcTable))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// compact rewrites the journal with only live state: a new file, fsync'd,
// renamed over the old one.
func (s *fileStore) compact() error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	n := 0
	for k, v := range s.kv {
		if err := s.append(w, &record{Op: "set", Key: k, Val: v}); err != nil {
			f.Close()
			return err
		}
		n++
	}
	var logs []*hraft.Log
	for i := s.first; i <= s.last && i != 0; i++ {
		if l, ok := s.logs[i]; ok {
			logs = append(logs, l)
		}
	}
	if len(logs) > 0 {
		if err := s.append(w, &record{Op: "logs", Logs: logs}); err != nil {
			f.Close()
			return err
		}
		n++
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		f.Close()
		return err
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync()
		d.Close()
	}
	s.f.Close()
	s.f, s.w, s.records = f, bufio.NewWriter(f), n
	return nil
}

func (s *fileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// FirstIndex implements raft.LogStore.
func (s *fileStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex implements raft.LogStore.
func (s *fileStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// GetLog implements raft.LogStore.
func (s *fileStore) GetLog(index uint64, log *hraft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logs[index]
	if !ok {
		return hraft.ErrLogNotFound
	}
	*log = *l
	return nil
}

// StoreLog implements raft.LogStore.
func (s *fileStore) StoreLog(log *hraft.Log) error { return s.StoreLogs([]*hraft.Log{log}) }

// StoreLogs implements raft.LogStore.
func (s *fileStore) StoreLogs(logs []*hraft.Log) error {
	cp := make([]*hraft.Log, len(logs))
	for i, l := range logs {
		c := *l
		cp[i] = &c
	}
	return s.write(&record{Op: "logs", Logs: cp})
}

// DeleteRange implements raft.LogStore.
func (s *fileStore) DeleteRange(min, max uint64) error {
	return s.write(&record{Op: "delete", Min: min, Max: max})
}

// Set implements raft.StableStore.
func (s *fileStore) Set(key, val []byte) error {
	return s.write(&record{Op: "set", Key: string(key), Val: append([]byte(nil), val...)})
}

// Get implements raft.StableStore.
func (s *fileStore) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[string(key)]
	if !ok {
		return nil, errNotFound
	}
	return append([]byte(nil), v...), nil
}

// SetUint64 implements raft.StableStore.
func (s *fileStore) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 implements raft.StableStore.
func (s *fileStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft store: key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
