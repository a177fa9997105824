package logs

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/podkit/podkit/adapter/logs/parse"
	"github.com/podkit/podkit/adapter/logs/timestamp"
)

// The output is one JSON object per line with these fields, always in
// this order (see docs/logs.md):
//
//	timestamp   RFC 3339, UTC, nine fractional digits: the event's own time
//	            when it carried one that parsed, else when podkit read it
//	severity    TRACE, DEBUG, INFO, WARN, ERROR, FATAL or UNSPECIFIED
//	body        the message (for unparsed lines, the whole line)
//	attributes  an object: the fields the parser found (a timestamp field
//	            that did not parse stays here, under its own name), plus
//	            log.format, multiline.lines and multiline.truncated
//	source      an object: type (file, stdin, redis-slowlog), path or
//	            address, and offset (the byte after the event) for files

// safe[c] is true for ASCII bytes written as they are inside a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendStr(dst []byte, s string) []byte {
	return appendString(dst, []byte(s))
}

// source describes where events come from, pre-encoded.
type source struct {
	// prefix is `,"source":{"type":"file","path":"..."` (no closing brace).
	prefix []byte
	offset bool
}

func newSource(kind, key, value string, offset bool) source {
	b := []byte(`,"source":{"type":`)
	b = appendStr(b, kind)
	if key != "" {
		b = append(b, ',')
		b = appendStr(b, key)
		b = append(b, ':')
		b = appendStr(b, value)
	}
	return source{prefix: b, offset: offset}
}

// encoder writes events.
type encoder struct {
	buf []byte
}

// event appends one output line for a parsed (or unparsed) event.
func (e *encoder) event(r *parse.Record, parsed bool, lines int, truncated bool, observed time.Time, src *source, end int64) {
	b := append(e.buf, `{"timestamp":"`...)
	if r.HasTime {
		b = timestamp.Append(b, r.Time)
	} else {
		b = timestamp.Append(b, observed)
	}
	b = append(b, `","severity":"`...)
	b = append(b, r.Severity.String()...)
	b = append(b, `","body":`...)
	if r.BodyJSON {
		b = append(b, r.Body...)
	} else {
		b = appendString(b, r.Body)
	}
	b = append(b, `,"attributes":{`...)
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	for _, a := range r.Attrs {
		sep()
		if a.KeyRaw {
			b = append(b, '"')
			b = append(b, a.Key...)
			b = append(b, '"')
		} else {
			b = appendString(b, a.Key)
		}
		b = append(b, ':')
		if a.Kind == parse.Raw {
			b = append(b, a.Value...)
		} else {
			b = appendString(b, a.Value)
		}
	}
	if parsed {
		sep()
		b = append(b, `"log.format":"`...)
		b = append(b, r.Format.String()...)
		b = append(b, '"')
	}
	if lines > 1 {
		sep()
		b = append(b, `"multiline.lines":`...)
		b = strconv.AppendInt(b, int64(lines), 10)
	}
	if truncated {
		sep()
		b = append(b, `"multiline.truncated":true`...)
	}
	b = append(b, '}')
	b = append(b, src.prefix...)
	if src.offset {
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, end, 10)
	}
	b = append(b, '}', '}', '\n')
	e.buf = b
}
