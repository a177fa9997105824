package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/podkit/podkit/container"
)

// tlsFiles are the files of every upstream TLS client in force, for the
// TLS reloader's watch.
func (b *Broker) tlsFiles() []string {
	var files []string
	for _, s := range b.services() {
		if c := s.cur.Load().tls; c != nil {
			files = append(files, c.Files()...)
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// reloadTLS re-reads the TLS files of every upstream that originates
// TLS; a client whose files are bad keeps its certificates, and the
// reload counts as refused.
func (b *Broker) reloadTLS(context.Context) (struct{}, error) {
	var errs []error
	n := 0
	for _, s := range b.services() {
		g := s.cur.Load()
		if g.tls == nil {
			continue
		}
		n++
		if err := g.tls.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("upstream %q: %w", g.spec.Name, err))
		}
	}
	if n == 0 {
		return struct{}{}, fmt.Errorf("%w: no upstream originates TLS", container.ErrUnchanged)
	}
	return struct{}{}, errors.Join(errs...)
}
