package httpproxy

import (
	"errors"
	"net/http"
	"syscall"
	"time"
)

// Outcome is how one attempt at forwarding a request ended, as Pick's
// done function is told.
type Outcome struct {
	// Backend is the backend the attempt went to.
	Backend *Backend
	// Status is the backend's final status (an interim 1xx is not one;
	// 101 is), or 0 when it gave none.
	Status int
	// Failure is "" when the backend answered and its answer was relayed
	// whole; otherwise what failed: BackendError's kinds (dial, write,
	// read, protocol, timeout), or "client" when the client went away
	// (which says nothing of the backend).
	Failure string
	// Retryable is set for a failure after which the request may be sent
	// to another backend: the connect failed, or the connection was
	// closed or reset before any byte of an answer came, and the request
	// is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and has no
	// body.
	Retryable bool
	// Duration is the time from the request's head to the end of the
	// attempt.
	Duration time.Duration
}

// StatusError is an error of Route or Pick that says which status the
// engine answers with (503 for an upstream without a usable endpoint,
// say); other errors are answered 502.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// routeStatus is the status for a request Route or Pick found no backend
// for.
func routeStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) && se.Code >= 400 && se.Code <= 599 {
		return se.Code
	}
	return http.StatusBadGateway
}

// idempotent reports whether a request with this method may be sent
// twice (RFC 9110 9.2.2), for a retry on another backend.
func idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// beforeAnswer reports whether err, a failure while waiting for the
// answer to a request that was sent whole, happened before any byte of
// the answer: the backend closed or reset the connection.
func beforeAnswer(err error) bool {
	return !isTimeout(err) && (errors.Is(err, errBackendClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}

// attempt is the backend of one attempt at a request and its done
// function: exactly one report per attempt.
type attempt struct {
	p     *Proxy
	b     *Backend
	done  func(Outcome) bool
	tries int
	start time.Time
}

// report tells done how the attempt ended, once; it returns whether done
// asked for a retry.
func (a *attempt) report(o Outcome) bool {
	d := a.done
	if d == nil {
		return false
	}
	a.done = nil
	o.Backend = a.b
	o.Duration = time.Since(a.start)
	return d(o)
}

// failed reports a failure of the attempt; when it is retryable and done
// asks for a retry, it picks the next backend for r and reports true.
// Otherwise the caller answers the failure.
func (a *attempt) failed(r *Request, kind string, retryable bool) bool {
	if !a.report(Outcome{Failure: kind, Retryable: retryable}) || !retryable || a.p.cfg.Pick == nil {
		return false
	}
	a.tries++
	b, done, _ := a.p.cfg.Pick(r, a.tries)
	if b == nil {
		return false // the first failure is answered
	}
	a.b, a.done = b, done
	return true
}

// failureKind is the BackendError kind of err.
func (p *Proxy) failureKind(b *Backend, err error) string {
	_, kind, _ := p.failure(b, err)
	return kind
}
