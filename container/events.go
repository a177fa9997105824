package container

import (
	"sync"
	"time"
)

// Lifecycle event types sent on GET /lifecycle.
const (
	EventStarting = "starting"
	EventReady    = "ready"
	EventPaused   = "paused"
	EventResumed  = "resumed"
	EventDraining = "draining"
	EventStopping = "stopping"
	// EventReload is sent once per reload (see Reloader), whatever its
	// result; What, Trigger, Result and Error say which, why and how.
	EventReload = "reload"
)

// Event is one lifecycle event.
type Event struct {
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	Deadline time.Time `json:"deadline,omitzero"` // draining: when the process will be gone at the latest

	// reload only:
	What    string `json:"what,omitempty"`    // what was reloaded: "configuration", "certificate"
	Trigger string `json:"trigger,omitempty"` // why: "SIGHUP", "file change", "poll", "requested"
	Result  string `json:"result,omitempty"`  // ok, error or unchanged, as in podkit_<component>_reloads_total
	Error   string `json:"error,omitempty"`   // result error: why the new version was refused
}

const maxHistory = 64

// broker fans lifecycle events out to subscribers. It keeps the history so
// a late subscriber learns the current state first.
type broker struct {
	mu      sync.Mutex
	history []Event
	subs    map[chan Event]struct{}
	closed  bool
}

func newBroker() *broker { return &broker{subs: map[chan Event]struct{}{}} }

func (b *broker) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.history = append(b.history, e)
	if len(b.history) > maxHistory {
		// Keep the first two ("starting", "ready") and the most recent.
		b.history = append(b.history[:2], b.history[len(b.history)-maxHistory+2:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default: // a subscriber that does not read loses events rather than block the host
		}
	}
}

// subscribe returns the events so far and a channel of later ones; the
// channel is closed after "stopping" (or at once if that already happened).
func (b *broker) subscribe() ([]Event, chan Event, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	past := append([]Event(nil), b.history...)
	ch := make(chan Event, 16)
	if b.closed {
		close(ch)
		return past, ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return past, ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for ch := range b.subs {
		close(ch)
		delete(b.subs, ch)
	}
}
