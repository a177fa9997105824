package tail

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// StateFile is the checkpoint file's name inside the state directory.
const StateFile = "checkpoints.json"

// Checkpoint is one file's saved position: the offset after the last line
// whose event was written to the output, and the identity of the file.
type Checkpoint struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
	// FPLen bytes at the head of the file hash to FP (FNV-1a, 64 bits,
	// hex): a reused inode holds other bytes.
	FPLen int    `json:"fp_len"`
	FP    string `json:"fp"`
}

type stateDoc struct {
	Version int          `json:"version"`
	Files   []Checkpoint `json:"files"`
}

// LoadState reads the checkpoints in dir; a missing file is no
// checkpoints.
func LoadState(dir string) ([]Checkpoint, error) {
	p := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", p, doc.Version)
	}
	return doc.Files, nil
}

// SaveState writes the checkpoints atomically: a temporary file in dir,
// synced, renamed over the old one, and the directory synced.
func SaveState(dir string, files []Checkpoint) error {
	b, err := json.Marshal(stateDoc{Version: 1, Files: files})
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, StateFile), b)
}

// WriteFileAtomic replaces path with data so that a reader (or a restart
// after a crash) sees either the old content or the new, never a mix.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
