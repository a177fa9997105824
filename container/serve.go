package container

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// ServeHTTP serves srv on ln until ctx ends, then shuts it down gracefully:
// the listener closes at once (new connections are refused), requests in
// flight finish until h.DrainContext() ends, and what is still open then is
// closed. It sets the component ready once serving.
func ServeHTTP(ctx context.Context, h *Host, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	h.SetReady(true)
	select {
	case err := <-errc:
		h.SetReady(false)
		return err
	case <-ctx.Done():
	}
	h.SetReady(false)
	if err := srv.Shutdown(h.DrainContext()); err != nil {
		h.Logger().Warn("closing connections still open at the drain deadline", "error", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
