package parse

import (
	"unicode/utf8"
)

// Common names of the timestamp, level and message fields of JSON logs
// (zap, logrus, slog, pino, bunyan, Serilog, ECS, Docker's json-file).
func jsonRole(key []byte) byte {
	switch string(key) {
	case "timestamp", "time", "ts", "@timestamp", "datetime", "date", "t", "@t", "eventTime", "Timestamp", "Time":
		return 't'
	case "level", "severity", "lvl", "loglevel", "log.level", "levelname", "@l", "Level", "Severity", "severity_text":
		return 'l'
	case "message", "msg", "body", "log", "text", "@m", "Message", "MESSAGE":
		return 'm'
	}
	return 0
}

// parseJSON reads one JSON object per event. The first timestamp, level
// and message fields (by the names above) fill the Record; every other
// member is kept as an attribute with its raw JSON value.
func (p *Parser) parseJSON(event []byte, r *Record) bool {
	if !utf8.Valid(event) {
		return false
	}
	b := event
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		kEnd, kEsc, ok := scanString(b, i)
		if !ok {
			return false
		}
		key := b[i+1 : kEnd-1]
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		vEnd, ok := scanValue(b, i, 0)
		if !ok {
			return false
		}
		val := b[i:vEnd]
		role := byte(0)
		if !kEsc {
			role = jsonRole(key)
		}
		if !p.jsonField(role, key, val, r) {
			r.Attrs = append(r.Attrs, Attr{Key: key, KeyRaw: true, Value: val, Kind: Raw})
		}
		i = skipWS(b, vEnd)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			return skipWS(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
}

// jsonField takes a timestamp, level or message value into the Record,
// and reports whether it did (else the member stays an attribute).
func (p *Parser) jsonField(role byte, key, val []byte, r *Record) bool {
	switch role {
	case 't':
		if r.HasTime || r.TimeFailed {
			return false
		}
		var text []byte
		switch {
		case val[0] == '"':
			text = val[1 : len(val)-1]
		case isDigit(val[0]):
			text = val
		default:
			return false
		}
		t, _, err := p.Time.Parse(text)
		if err != nil {
			r.TimeFailed = true // kept as an attribute
			return false
		}
		r.Time, r.HasTime = t, true
		return true
	case 'l':
		if r.Severity != Unspecified {
			return false
		}
		if val[0] == '"' {
			s, ok := ParseSeverity(val[1 : len(val)-1])
			if ok {
				r.Severity = s
				return true
			}
			return false
		}
		if s, ok := severityFromNumber(val); ok {
			r.Severity = s
			return true
		}
	case 'm':
		if r.Body != nil || val[0] != '"' {
			return false
		}
		r.Body, r.BodyJSON = val, true
		return true
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString scans the JSON string starting at b[i] == '"' and returns the
// index after its closing quote, and whether it holds escapes.
func scanString(b []byte, i int) (end int, escaped, ok bool) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return 0, false, false
				}
				i += 6
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		default:
			i++
		}
	}
	return 0, false, false
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

const maxDepth = 64

// scanValue scans the JSON value at b[i] and returns the index after it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case c == '{':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			end, _, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = scanValue(b, skipWS(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || isDigit(c):
		return scanNumber(b, i)
	}
	return 0, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return 0, false
}

// scanNumber follows JSON's number grammar.
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, false
	}
	if b[i] == '0' {
		i++
	} else if isDigit(b[i]) {
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	} else {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == start {
			return 0, false
		}
	}
	return i, true
}
