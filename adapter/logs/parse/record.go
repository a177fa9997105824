// Package parse turns log lines of common formats — JSON lines, logfmt,
// Common/Combined Log Format, log4j-style "timestamp LEVEL [thread] logger
// - message", and syslog (RFC 3164 and RFC 5424) — into a Record: a
// timestamp, a severity, a body and attributes.
//
// Parsers do not allocate on the common path: a Record's byte slices point
// into the line (or into the Record's own scratch buffer for values that
// had to be unescaped), so a Record is valid only while its line is.
package parse

import (
	"time"
	"unsafe"
)

// Severity is a normalized log level, named as OpenTelemetry's severity
// text ranges: TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
type Severity uint8

// Severities, in increasing order.
const (
	Unspecified Severity = iota
	Trace
	Debug
	Info
	Warn
	Error
	Fatal
)

var severityNames = [...]string{"UNSPECIFIED", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "UNSPECIFIED"
}

// ParseSeverity recognizes a level word in any case: trace, finest,
// finer, verbose (TRACE); debug, fine, dbg (DEBUG); info, information,
// informational, notice (INFO); warn, warning (WARN); error, err, severe
// (ERROR); fatal, critical, crit, alert, emerg, emergency, panic (FATAL).
func ParseSeverity(b []byte) (Severity, bool) {
	if len(b) < 3 || len(b) > 13 {
		return Unspecified, false
	}
	var low [13]byte
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	switch string(low[:len(b)]) {
	case "trace", "finest", "finer", "verbose", "trc":
		return Trace, true
	case "debug", "fine", "dbg":
		return Debug, true
	case "info", "information", "informational", "notice", "inf":
		return Info, true
	case "warn", "warning", "wrn":
		return Warn, true
	case "error", "err", "severe", "eror":
		return Error, true
	case "fatal", "critical", "crit", "alert", "emerg", "emergency", "panic", "ftl":
		return Fatal, true
	}
	return Unspecified, false
}

// severityFromNumber maps pino/bunyan numeric levels (10 trace … 60 fatal).
func severityFromNumber(b []byte) (Severity, bool) {
	switch string(b) {
	case "10":
		return Trace, true
	case "20":
		return Debug, true
	case "30":
		return Info, true
	case "40":
		return Warn, true
	case "50":
		return Error, true
	case "60":
		return Fatal, true
	}
	return Unspecified, false
}

// Kind says how an attribute's value is written in JSON.
type Kind uint8

// Value kinds.
const (
	String Kind = iota // text to be escaped as a JSON string
	Raw                // a valid JSON value, written as is
)

// Attr is one attribute. Key is plain text unless KeyRaw, in which case it
// is the escaped content of a JSON string (written between quotes as is).
type Attr struct {
	Key    []byte
	KeyRaw bool
	Value  []byte
	Kind   Kind
}

// Format is a line format.
type Format uint8

// The formats.
const (
	None Format = iota // not parsed: the line is the body
	JSON
	Logfmt
	CLF
	Log4j
	Syslog
)

var formatNames = [...]string{"none", "json", "logfmt", "clf", "log4j", "syslog"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// ParseFormat parses a format's name.
func ParseFormat(s string) (Format, bool) {
	for i, n := range formatNames {
		if s == n {
			return Format(i), true
		}
	}
	if s == "combined" || s == "common" {
		return CLF, true
	}
	return None, false
}

// Record is a parsed line.
type Record struct {
	Time     time.Time
	HasTime  bool
	Severity Severity
	// Body is the message. BodyJSON means it is a JSON string token,
	// quotes included, to be written as is.
	Body     []byte
	BodyJSON bool
	Attrs    []Attr
	Format   Format
	// TimeFailed is set when a timestamp field was found but did not
	// parse; the field is kept among the attributes.
	TimeFailed bool

	scratch []byte
}

// Reset empties r for reuse, keeping its buffers.
func (r *Record) Reset() {
	attrs, scratch := r.Attrs[:0], r.scratch[:0]
	*r = Record{Attrs: attrs, scratch: scratch}
}

func (r *Record) add(key string, val []byte, kind Kind) {
	r.Attrs = append(r.Attrs, Attr{Key: s2b(key), Value: val, Kind: kind})
}

// s2b returns a constant key's bytes without copying; the result is never
// written to.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// reserve makes room for n bytes of unescaped values without moving
// earlier ones.
func (r *Record) reserve(n int) {
	if cap(r.scratch)-len(r.scratch) < n {
		r.scratch = make([]byte, 0, max(n, 2*cap(r.scratch), 256))
	}
}

func trimLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
