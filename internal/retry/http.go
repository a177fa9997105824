package retry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Request is an HTTP request sent with retries: a notify hook's POST, a
// reloader's request.
type Request struct {
	// Client sends the request (nil: http.DefaultClient).
	Client *http.Client
	// Method is the request's method ("": POST).
	Method string
	// URL is where the request goes.
	URL string
	// Header is sent with every attempt (may be nil).
	Header http.Header
	// Body is sent with every attempt (nil: no body).
	Body []byte
	// Timeout bounds each attempt, the answer's body included (0: only the
	// Client's own timeout).
	Timeout time.Duration
	// Accept reports whether an answer's status means success (nil: 2xx).
	Accept func(status int) bool
	// Final reports whether a status that Accept refused is final, so it is
	// not retried (nil: every refused status is retried).
	Final func(status int) bool
}

// StatusError is an answer whose status Request.Accept refused.
type StatusError struct {
	URL    string
	Status string // "503 Service Unavailable"
	Code   int
	// Body is the start of the answer's body (at most 256 bytes).
	Body []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %s", e.URL, e.Status)
}

// Do sends the request under p until it is accepted. It returns the
// number of attempts and the last error: the Client's (a transport
// failure) or a *StatusError. See the package function Do for the rest.
func (r Request) Do(ctx context.Context, p Policy) (int, error) {
	return Do(ctx, p, func(ctx context.Context, _ int) error {
		err := r.Once(ctx)
		if se, ok := err.(*StatusError); ok && r.Final != nil && r.Final(se.Code) {
			return Permanent(err)
		}
		return err
	})
}

// Once sends the request once: nil if the answer is accepted, otherwise
// the Client's error or a *StatusError. The answer's body is read (up to
// 64 KiB, so the connection can be reused) and closed.
func (r Request) Once(ctx context.Context) error {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, body)
	if err != nil {
		return err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ok := resp.StatusCode/100 == 2
	if r.Accept != nil {
		ok = r.Accept(resp.StatusCode)
	}
	if !ok {
		return &StatusError{URL: r.URL, Status: resp.Status, Code: resp.StatusCode, Body: snippet}
	}
	return nil
}
