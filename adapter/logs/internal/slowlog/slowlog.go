// Package slowlog decodes a Redis server's SLOWLOG GET reply (read with
// internal/resp's client) and tracks which entries are new between polls:
// it notices a restart of the server (its run_id changed, or the entry ids
// went backwards) and entries lost between two polls (the first new id is
// not the last seen + 1: the log overflowed slowlog-max-len, or was reset).
package slowlog

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/podkit/podkit/internal/resp"
)

// ErrProtocol is wrapped by errors about replies that are valid RESP but
// not the shape SLOWLOG GET answers with.
var ErrProtocol = errors.New("malformed SLOWLOG reply")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Entry is one SLOWLOG entry.
type Entry struct {
	ID         int64
	Time       time.Time
	Duration   time.Duration
	Args       []string
	Client     string // address, Redis ≥ 4.0
	ClientName string
}

// ParseEntries decodes a SLOWLOG GET reply.
func ParseEntries(v resp.Value) ([]Entry, error) {
	if v.Kind != resp.KindArray || v.Nil {
		return nil, protoErr("SLOWLOG GET reply is not an array")
	}
	out := make([]Entry, 0, len(v.Array))
	for i, e := range v.Array {
		if e.Kind != resp.KindArray || len(e.Array) < 4 {
			return nil, protoErr("entry %d: not an array of at least 4 fields", i)
		}
		f := e.Array
		if f[0].Kind != resp.KindInteger || f[1].Kind != resp.KindInteger || f[2].Kind != resp.KindInteger || f[3].Kind != resp.KindArray {
			return nil, protoErr("entry %d: want id, time, duration integers and an argument array", i)
		}
		if f[0].Int < 0 || f[2].Int < 0 {
			return nil, protoErr("entry %d: negative id or duration", i)
		}
		en := Entry{ID: f[0].Int, Time: time.Unix(f[1].Int, 0).UTC(), Duration: time.Duration(f[2].Int) * time.Microsecond}
		for j, a := range f[3].Array {
			if a.Nil || a.Kind != resp.KindBulk && a.Kind != resp.KindSimple {
				return nil, protoErr("entry %d: argument %d is not a string", i, j)
			}
			en.Args = append(en.Args, a.Str)
		}
		if len(f) >= 6 {
			en.Client, en.ClientName = f[4].Str, f[5].Str
		}
		out = append(out, en)
	}
	return out, nil
}

// ParseInfoField returns a field of an INFO reply ("run_id").
func ParseInfoField(info, field string) string {
	for line := range strings.Lines(info) {
		line = strings.TrimRight(line, "\r\n")
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return v
		}
	}
	return ""
}

// Tracker decides which entries are new. Its zero value has seen nothing.
type Tracker struct {
	RunID  string `json:"run_id"`
	LastID int64  `json:"last_id"` // -1 or absent: nothing seen yet
	Seen   bool   `json:"seen"`
}

// Result is what one poll brought.
type Result struct {
	New []Entry // oldest first
	// Restart is set when the server restarted since the last poll.
	Restart       bool
	RestartReason string
	PreviousID    int64 // the last id seen before the restart
	// Lost counts entries gone before they could be read: ids
	// FirstLost..LastLost. Overflow says the log was full
	// (slowlog-max-len); otherwise it was reset (SLOWLOG RESET).
	Lost                int64
	FirstLost, LastLost int64
	Overflow            bool
}

// Observe takes one poll: the server's run_id, the entries returned by
// SLOWLOG GET (any order) and slowlog-max-len (0 if unknown). It does not
// change the Tracker; call Commit with the Result once the new entries
// have been written.
func (t *Tracker) Observe(runID string, entries []Entry, maxLen int) Result {
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID < entries[j].ID })
	var res Result
	last := t.LastID
	seen := t.Seen
	if seen {
		switch {
		case runID != "" && t.RunID != "" && runID != t.RunID:
			res.Restart, res.RestartReason = true, fmt.Sprintf("run_id changed from %s to %s", t.RunID, runID)
		case len(entries) > 0 && entries[len(entries)-1].ID < last:
			res.Restart, res.RestartReason = true, fmt.Sprintf("slowlog ids went back from %d to %d", last, entries[len(entries)-1].ID)
		}
		if res.Restart {
			res.PreviousID = last
			seen = false
		}
	}
	for i, e := range entries {
		if !seen || e.ID > last {
			res.New = entries[i:]
			break
		}
	}
	if seen && len(res.New) > 0 && res.New[0].ID > last+1 {
		res.Lost = res.New[0].ID - last - 1
		res.FirstLost, res.LastLost = last+1, res.New[0].ID-1
		res.Overflow = maxLen > 0 && len(entries) >= maxLen
	}
	return res
}

// Commit advances the Tracker past a Result's entries.
func (t *Tracker) Commit(runID string, res Result) {
	if res.Restart || !t.Seen {
		t.LastID = -1
	}
	if runID != "" {
		t.RunID = runID
	}
	if n := len(res.New); n > 0 {
		t.LastID = res.New[n-1].ID
	}
	t.Seen = true
}
