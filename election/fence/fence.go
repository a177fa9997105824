// Package fence protects a resource from a deposed leader. Every leader
// elected by podkit elect carries an epoch that is strictly greater than
// every earlier leader's (a fencing token); a resource that remembers the
// highest epoch it has seen and rejects anything lower cannot be written by
// a leader that was paused, partitioned or slow and has since been
// replaced, even if that leader still believes it leads.
//
// A Fence does the bookkeeping; Middleware applies it to HTTP requests that
// carry the epoch in the X-Leader-Epoch header (podkit elect's leader proxy
// adds it). Guard also orders the work: once a higher epoch is admitted, no
// request of a lower epoch is still running or admitted later.
package fence

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Header is the HTTP header that carries the epoch.
const Header = "X-Leader-Epoch"

// ErrStale is returned for an epoch lower than the highest seen.
var ErrStale = errors.New("stale epoch")

// StaleError says which epoch was rejected and which is current.
type StaleError struct {
	Epoch, Highest uint64
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("stale epoch %d: epoch %d has been seen", e.Epoch, e.Highest)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// Fence admits work by epoch. The zero value is ready to use and has seen
// no epoch; set Highest with New when the resource remembers one.
type Fence struct {
	// Persist, if set, is called (holding the fence) before a higher epoch
	// is admitted, so that the resource can store it durably; if it fails
	// the request is not admitted and the highest epoch is unchanged.
	Persist func(epoch uint64) error

	mu      sync.RWMutex
	highest uint64
}

// New returns a fence that has already seen highest (e.g. loaded from the
// resource's storage).
func New(highest uint64) *Fence { return &Fence{highest: highest} }

// Highest returns the highest epoch admitted so far.
func (f *Fence) Highest() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.highest
}

// Check admits epoch if it is not lower than the highest seen, raising the
// highest; it does not hold the fence afterwards (see Guard).
func (f *Fence) Check(epoch uint64) error {
	release, err := f.Guard(epoch)
	if err != nil {
		return err
	}
	release()
	return nil
}

// Guard admits epoch if it is not lower than the highest seen, raising the
// highest if it is greater, and holds the fence until release is called:
// work of one epoch runs concurrently, but a higher epoch is admitted only
// after the work of lower ones is released, and lower ones are rejected
// from then on. The error is a *StaleError for a stale epoch.
func (f *Fence) Guard(epoch uint64) (release func(), err error) {
	for {
		f.mu.RLock()
		switch h := f.highest; {
		case epoch == h:
			return f.mu.RUnlock, nil
		case epoch < h:
			f.mu.RUnlock()
			return nil, &StaleError{Epoch: epoch, Highest: h}
		}
		f.mu.RUnlock()
		f.mu.Lock()
		if epoch > f.highest {
			if f.Persist != nil {
				if err := f.Persist(epoch); err != nil {
					f.mu.Unlock()
					return nil, fmt.Errorf("fence: storing epoch %d: %w", epoch, err)
				}
			}
			f.highest = epoch
		}
		f.mu.Unlock()
		// Loop to take the shared hold at the (possibly raised) epoch.
	}
}

// ParseEpoch parses an epoch header value: a decimal number greater than 0.
func ParseEpoch(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty epoch")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("epoch %q is not a decimal number", s)
	}
	if n == 0 {
		return 0, errors.New("epoch 0 is not a leader's epoch")
	}
	return n, nil
}

// Middleware admits a request to next only if its X-Leader-Epoch header is
// not lower than the highest epoch f has seen, and holds the fence while
// next runs. A missing or malformed header is answered 400; a stale epoch
// 409 Conflict, with a JSON body naming both epochs and the current one in
// the X-Leader-Epoch response header.
func Middleware(f *Fence, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(Header)
		if v == "" {
			reject(w, http.StatusBadRequest, "missing "+Header+" header", 0, f.Highest())
			return
		}
		epoch, err := ParseEpoch(v)
		if err != nil {
			reject(w, http.StatusBadRequest, Header+": "+err.Error(), 0, f.Highest())
			return
		}
		release, err := f.Guard(epoch)
		if err != nil {
			var se *StaleError
			if errors.As(err, &se) {
				reject(w, http.StatusConflict, err.Error(), epoch, se.Highest)
				return
			}
			reject(w, http.StatusServiceUnavailable, err.Error(), epoch, f.Highest())
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

func reject(w http.ResponseWriter, code int, msg string, epoch, highest uint64) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(Header, strconv.FormatUint(highest, 10))
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Epoch   uint64 `json:"epoch,omitempty"`
		Highest uint64 `json:"highest"`
	}{msg, epoch, highest})
}
