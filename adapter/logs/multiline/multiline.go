// Package multiline merges the lines of one log event — a stack trace, a
// goroutine dump, a line continued with a backslash — back into one event.
//
// A Rule works in one of Vector's four modes, with a start pattern (which
// lines may begin an event) and a condition pattern:
//
//   - continue_through: lines matching the condition join the event; the
//     first line that does not begins the next one (stack traces);
//   - continue_past: lines matching the condition join, plus one more line
//     (a trailing backslash continues a line);
//   - halt_before: lines not matching the condition join; a matching line
//     begins the next event (a line that starts with a timestamp);
//   - halt_with: lines join up to and including the first matching line (a
//     terminating semicolon).
//
// A line that arrives while no event is open begins one if it matches the
// start pattern, and is emitted alone otherwise. An open event is emitted
// when the rule says so, when its source is idle for the rule's timeout
// (Aggregator.Expired, then Flush), or when the next line would pass the
// rule's MaxLines or MaxBytes: the event is then cut there, marked
// Truncated, and the line begins a new event, so nothing is dropped.
//
// Built-in detectors (Java, Python, Go, Node, and "auto", all four at once)
// recognize stack traces by scanning bytes, without regular expressions;
// they run in continue_through mode with every line a possible start.
package multiline

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Mode is how the condition pattern groups lines.
type Mode uint8

// The four modes.
const (
	ContinueThrough Mode = iota
	ContinuePast
	HaltBefore
	HaltWith
)

var modeNames = [...]string{"continue_through", "continue_past", "halt_before", "halt_with"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// ParseMode parses a mode's name.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q (want %s)", s, strings.Join(modeNames[:], ", "))
}

// Matcher tests lines. A Matcher may keep state between calls (the
// built-in detectors do); each Aggregator gets its own from a Pattern.
type Matcher interface {
	Match(line []byte) bool
}

// Pattern makes Matchers.
type Pattern interface {
	NewMatcher() Matcher
}

// observer is a stateful Matcher that must see every line, not only the
// lines the mode asks about.
type observer interface {
	Matcher
	observe()
}

// Regexp is a Pattern from a regular expression (RE2 syntax).
type Regexp struct{ *regexp.Regexp }

// NewMatcher implements Pattern; a regular expression has no state.
func (r Regexp) NewMatcher() Matcher { return r }

// Match implements Matcher.
func (r Regexp) Match(line []byte) bool { return r.Regexp.Match(line) }

// Any matches every line.
type Any struct{}

// NewMatcher implements Pattern.
func (Any) NewMatcher() Matcher { return Any{} }

// Match implements Matcher.
func (Any) Match([]byte) bool { return true }

// Rule is one multiline configuration.
type Rule struct {
	Name      string
	Mode      Mode
	Start     Pattern       // nil: every line may begin an event
	Condition Pattern       // required
	Timeout   time.Duration // idle time after which an open event is emitted (0: DefaultTimeout)
	MaxLines  int           // lines per event (0: DefaultMaxLines)
	MaxBytes  int           // bytes per event (0: DefaultMaxBytes)
}

// Defaults for a Rule's limits.
const (
	DefaultTimeout  = time.Second
	DefaultMaxLines = 1000
	DefaultMaxBytes = 1 << 20
)

// Validate checks the rule.
func (r *Rule) Validate() error {
	var errs []error
	if r.Condition == nil {
		errs = append(errs, errors.New("condition_pattern is required"))
	}
	if r.Mode > HaltWith {
		errs = append(errs, fmt.Errorf("unknown mode %d", r.Mode))
	}
	if r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", r.Timeout))
	}
	if r.MaxLines < 0 {
		errs = append(errs, fmt.Errorf("max_lines %d is negative", r.MaxLines))
	}
	if r.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes %d is negative", r.MaxBytes))
	}
	return errors.Join(errs...)
}

// Event is one merged event. Data is valid only until the next call on
// the Aggregator that emitted it.
type Event struct {
	Data      []byte
	Lines     int
	Truncated bool  // cut at MaxLines or MaxBytes; the rest begins the next event
	End       int64 // the end position passed with the event's last line
}

// Sink receives events.
type Sink interface {
	Emit(Event)
}

// Aggregator merges the lines of one source. It is not safe for
// concurrent use.
type Aggregator struct {
	mode               Mode
	start, cond        Matcher
	condObserves       bool
	timeout            time.Duration
	maxLines, maxBytes int

	open      bool
	buf       []byte
	lines     int
	truncated bool
	end       int64
	last      time.Time

	// Statistics, for metrics: events with more than one line, and
	// events cut at a limit.
	Merged, Truncations, TruncatedByBytes uint64
}

// New returns an Aggregator for one source.
func (r *Rule) New() *Aggregator {
	a := &Aggregator{
		mode:     r.Mode,
		timeout:  r.Timeout,
		maxLines: r.MaxLines,
		maxBytes: r.MaxBytes,
	}
	if a.timeout == 0 {
		a.timeout = DefaultTimeout
	}
	if a.maxLines == 0 {
		a.maxLines = DefaultMaxLines
	}
	if a.maxBytes == 0 {
		a.maxBytes = DefaultMaxBytes
	}
	if r.Start != nil {
		a.start = r.Start.NewMatcher()
	}
	if r.Condition != nil {
		a.cond = r.Condition.NewMatcher()
	} else {
		a.cond = Any{}
	}
	_, a.condObserves = a.cond.(observer)
	return a
}

// Pending reports whether an event is open.
func (a *Aggregator) Pending() bool { return a.open }

// Expired reports whether the open event has waited for its timeout
// since its last line.
func (a *Aggregator) Expired(now time.Time) bool {
	return a.open && now.Sub(a.last) >= a.timeout
}

// Timeout is the rule's flush timeout.
func (a *Aggregator) Timeout() time.Duration { return a.timeout }

// Push adds one line (without its newline). end is an opaque position
// carried to the event that contains the line (a file offset, used for
// checkpoints). line may be reused by the caller once Push returns.
func (a *Aggregator) Push(line []byte, end int64, now time.Time, sink Sink) {
	if !a.open {
		isStart := a.start == nil || a.start.Match(line)
		if a.condObserves {
			a.cond.Match(line)
		}
		if isStart {
			a.begin(line, end, now)
			return
		}
		sink.Emit(Event{Data: line, Lines: 1, End: end})
		return
	}
	matched := a.cond.Match(line)
	switch a.mode {
	case ContinueThrough:
		if matched {
			a.add(line, end, now, sink)
			return
		}
		a.emit(sink)
		a.begin(line, end, now)
	case ContinuePast:
		a.add(line, end, now, sink)
		if !matched {
			a.emit(sink)
		}
	case HaltBefore:
		if matched {
			a.emit(sink)
			a.begin(line, end, now)
			return
		}
		a.add(line, end, now, sink)
	case HaltWith:
		a.add(line, end, now, sink)
		if matched {
			a.emit(sink)
		}
	}
}

// Flush emits the open event, if any.
func (a *Aggregator) Flush(sink Sink) {
	if a.open {
		a.emit(sink)
	}
}

func (a *Aggregator) begin(line []byte, end int64, now time.Time) {
	a.open = true
	a.buf = append(a.buf[:0], line...)
	a.lines = 1
	a.end = end
	a.last = now
	a.truncated = false
}

func (a *Aggregator) add(line []byte, end int64, now time.Time, sink Sink) {
	if !a.open {
		a.begin(line, end, now)
		return
	}
	overLines := a.lines+1 > a.maxLines
	overBytes := len(a.buf)+1+len(line) > a.maxBytes
	if overLines || overBytes {
		a.truncated = true
		a.Truncations++
		if overBytes && !overLines {
			a.TruncatedByBytes++
		}
		a.emit(sink)
		a.begin(line, end, now)
		return
	}
	a.buf = append(a.buf, '\n')
	a.buf = append(a.buf, line...)
	a.lines++
	a.end = end
	a.last = now
}

func (a *Aggregator) emit(sink Sink) {
	data := a.buf
	if a.lines > 1 {
		a.Merged++
		for len(data) > 0 && (data[len(data)-1] == '\n' || data[len(data)-1] == '\r') {
			data = data[:len(data)-1]
		}
	}
	a.open = false
	ev := Event{Data: data, Lines: a.lines, Truncated: a.truncated, End: a.end}
	a.lines = 0
	sink.Emit(ev)
	if cap(a.buf) > 4*a.maxBytes && a.maxBytes < 1<<20 || cap(a.buf) > 1<<22 {
		a.buf = nil // do not keep a huge buffer for the rest of the run
	}
}
