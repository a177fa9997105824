package wal

import (
	"io"
	"log/slog"
	"testing"

	"github.com/podkit/podkit/workqueue/store"
	"github.com/podkit/podkit/workqueue/store/storetest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestConformanceWAL(t *testing.T) {
	dirs := map[store.Store]string{}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, cfg storetest.Config) store.Store {
			dir := t.TempDir()
			s, err := Open(dir, Options{Logger: quiet(), BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax, Now: cfg.Now})
			if err != nil {
				t.Fatal(err)
			}
			dirs[s] = dir
			t.Cleanup(func() { s.Close() })
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dir := dirs[s]
			old := s.(*Store)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			n, err := Open(dir, old.opts)
			if err != nil {
				t.Fatal(err)
			}
			dirs[n] = dir
			t.Cleanup(func() { n.Close() })
			return n
		},
	})
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, cfg storetest.Config) store.Store {
			s := OpenMemory(Options{Logger: quiet(), BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax, Now: cfg.Now})
			t.Cleanup(func() { s.Close() })
			return s
		},
	})
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
