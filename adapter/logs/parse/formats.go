package parse

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// parseLogfmt reads key=value pairs separated by spaces; values may be
// quoted with Go's escapes (strconv.Quote). time/ts/timestamp,
// level/lvl/severity and msg/message fill the Record.
func (p *Parser) parseLogfmt(event []byte, r *Record) bool {
	line, rest := firstLine(event)
	i, pairs := 0, 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i >= len(line) {
			break
		}
		ks := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' && line[i] != '\t' && line[i] != '"' && line[i] > 0x20 {
			i++
		}
		key := line[ks:i]
		if len(key) == 0 {
			return false
		}
		if i >= len(line) || line[i] != '=' {
			if i < len(line) && line[i] != ' ' && line[i] != '\t' {
				return false
			}
			r.Attrs = append(r.Attrs, Attr{Key: key, Value: s2b("true"), Kind: Raw})
			continue
		}
		i++ // '='
		var val []byte
		if i < len(line) && line[i] == '"' {
			end := i + 1
			esc := false
			for end < len(line) && line[end] != '"' {
				if line[end] == '\\' {
					esc = true
					end++
				}
				end++
			}
			if end >= len(line) {
				return false
			}
			raw := line[i : end+1]
			if esc {
				s, err := strconv.Unquote(string(raw))
				if err != nil {
					return false
				}
				r.reserve(len(s))
				off := len(r.scratch)
				r.scratch = append(r.scratch, s...)
				val = r.scratch[off:len(r.scratch):len(r.scratch)]
			} else {
				val = raw[1 : len(raw)-1]
			}
			i = end + 1
			if i < len(line) && line[i] != ' ' && line[i] != '\t' {
				return false
			}
		} else {
			vs := i
			for i < len(line) && line[i] != ' ' && line[i] != '\t' {
				if line[i] == '"' {
					return false
				}
				i++
			}
			val = line[vs:i]
		}
		pairs++
		if !p.logfmtField(key, val, r) {
			r.Attrs = append(r.Attrs, Attr{Key: key, Value: val, Kind: String})
		}
	}
	if pairs == 0 || !utf8.Valid(line) {
		return false
	}
	if rest != nil {
		// Lines merged after a logfmt header (a stack trace) join the message.
		if r.Body == nil {
			r.Body = bytes.TrimLeft(rest, "\n")
		} else {
			r.reserve(len(r.Body) + len(rest))
			off := len(r.scratch)
			r.scratch = append(r.scratch, r.Body...)
			r.scratch = append(r.scratch, rest...)
			r.Body = r.scratch[off:len(r.scratch):len(r.scratch)]
		}
	}
	return true
}

func (p *Parser) logfmtField(key, val []byte, r *Record) bool {
	switch string(key) {
	case "time", "ts", "timestamp", "t":
		if r.HasTime || r.TimeFailed {
			return false
		}
		t, _, err := p.Time.Parse(val)
		if err != nil {
			r.TimeFailed = true
			return false
		}
		r.Time, r.HasTime = t, true
		return true
	case "level", "lvl", "severity", "loglevel":
		if r.Severity != Unspecified {
			return false
		}
		s, ok := ParseSeverity(val)
		if ok {
			r.Severity = s
		}
		return ok
	case "msg", "message":
		if r.Body != nil {
			return false
		}
		r.Body = val
		return true
	}
	return false
}

// parseCLF reads the Common Log Format and its Combined extension:
//
//	host ident user [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 2326 "referer" "agent"
//
// The body is the whole line; the fields become attributes named after
// OpenTelemetry's HTTP conventions; the severity follows the status
// (5xx ERROR, 4xx WARN, else INFO).
func (p *Parser) parseCLF(event []byte, r *Record) bool {
	line, _ := firstLine(event)
	line = bytes.TrimRight(line, " \r")
	host, rest, ok := field(line)
	if !ok {
		return false
	}
	ident, rest, ok := field(rest)
	if !ok {
		return false
	}
	user, rest, ok := field(rest)
	if !ok || len(rest) < 2 || rest[0] != '[' {
		return false
	}
	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return false
	}
	t, n, err := p.Time.ParseCLFPrefix(rest[1:end])
	if err != nil || n != end-1 {
		return false
	}
	rest = rest[end+1:]
	if len(rest) < 2 || rest[0] != ' ' || rest[1] != '"' {
		return false
	}
	req, rest, ok := quotedField(rest[1:])
	if !ok {
		return false
	}
	rest = trimLeft(rest)
	status, rest, ok := field(rest)
	if !ok && len(rest) == 0 && len(status) == 0 {
		return false
	}
	if len(status) != 3 || status[0] < '1' || status[0] > '5' || !isDigit(status[1]) || !isDigit(status[2]) {
		return false
	}
	size, rest, _ := field(trimLeft(rest))
	if len(size) == 0 || !(string(size) == "-" || allDigits(size)) {
		return false
	}
	var referer, agent []byte
	rest = trimLeft(rest)
	if len(rest) > 0 {
		if referer, rest, ok = quotedField(rest); !ok {
			return false
		}
		rest = trimLeft(rest)
		if agent, rest, ok = quotedField(rest); !ok {
			return false
		}
		_ = rest // anything after the combined fields is ignored
	}
	if !utf8.Valid(line) {
		return false
	}
	r.Time, r.HasTime = t, true
	r.Body = event
	switch status[0] {
	case '5':
		r.Severity = Error
	case '4':
		r.Severity = Warn
	default:
		r.Severity = Info
	}
	r.add("client.address", host, String)
	if string(ident) != "-" {
		r.add("ident", ident, String)
	}
	if string(user) != "-" {
		r.add("user.name", user, String)
	}
	if m, rest, ok := bytes.Cut(req, []byte(" ")); ok {
		r.add("http.request.method", m, String)
		if u, proto, ok := bytes.Cut(rest, []byte(" ")); ok {
			r.add("url.original", u, String)
			r.add("network.protocol", proto, String)
		} else {
			r.add("url.original", rest, String)
		}
	} else if string(req) != "-" {
		r.add("http.request.line", req, String)
	}
	r.add("http.response.status_code", status, Raw)
	if string(size) != "-" {
		r.add("http.response.body.size", trimZeros(size), Raw)
	}
	if referer != nil && string(referer) != "-" {
		r.add("http.request.header.referer", referer, String)
	}
	if agent != nil && string(agent) != "-" {
		r.add("user_agent.original", agent, String)
	}
	return true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

// trimZeros makes a decimal a valid JSON number (no leading zeros).
func trimZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == '0' {
		b = b[1:]
	}
	return b
}

// field returns the text up to the next space and what follows it.
func field(b []byte) (f, rest []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return b, nil, false
	}
	return b[:i], b[i+1:], true
}

// quotedField reads "..." with backslash escapes kept as written.
func quotedField(b []byte) (f, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return b[1:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

// parseLog4j reads lines that begin with an ISO date and a level, as
// log4j's, logback's and Python logging's common patterns write them:
//
//	2024-01-02 03:04:05,678 ERROR [main] com.example.App - message
//	2024-01-02 03:04:05.678 [main] ERROR c.e.App - message
//	2024-01-02T03:04:05Z WARN app: message
//
// The thread and the logger become attributes; the message, with any
// lines merged after it (a stack trace), is the body.
func (p *Parser) parseLog4j(event []byte, r *Record) bool {
	t, n, err := p.Time.ParseRFC3339Prefix(event)
	if err != nil {
		return false
	}
	line, _ := firstLine(event)
	if n >= len(line) || (line[n] != ' ' && line[n] != '\t') {
		return false
	}
	pos := n
	skip := func() {
		for pos < len(line) && (line[pos] == ' ' || line[pos] == '\t') {
			pos++
		}
	}
	var thread []byte
	bracket := func() bool {
		if pos < len(line) && line[pos] == '[' {
			end := bytes.IndexByte(line[pos:], ']')
			if end < 0 {
				return false
			}
			thread = line[pos+1 : pos+end]
			pos += end + 1
			skip()
		}
		return true
	}
	skip()
	if !bracket() {
		return false
	}
	ws := pos
	for pos < len(line) && line[pos] != ' ' && line[pos] != '\t' && line[pos] != ':' {
		pos++
	}
	sev, ok := ParseSeverity(line[ws:pos])
	if !ok {
		return false
	}
	if pos < len(line) && line[pos] == ':' {
		pos++
	}
	skip()
	if thread == nil && !bracket() {
		return false
	}
	// logger - message, or logger: message
	msg := pos
	var logger []byte
	ls := pos
	for pos < len(line) && line[pos] != ' ' && line[pos] != '\t' {
		pos++
	}
	tok := line[ls:pos]
	switch {
	case len(tok) > 1 && tok[len(tok)-1] == ':':
		logger = tok[:len(tok)-1]
		skip()
		msg = pos
	case pos+2 < len(line) && line[pos+1] == '-' && line[pos+2] == ' ':
		logger = tok
		msg = pos + 3
	case pos+2 == len(line) && line[pos+1] == '-':
		logger = tok
		msg = len(line)
	}
	if !utf8.Valid(event) {
		return false
	}
	r.Time, r.HasTime = t, true
	r.Severity = sev
	r.Body = event[msg:]
	if thread != nil {
		r.add("thread.name", thread, String)
	}
	if logger != nil {
		r.add("logger.name", logger, String)
	}
	return true
}

// syslog severities 0–7 (emerg … debug).
var syslogSeverity = [8]Severity{Fatal, Fatal, Fatal, Error, Warn, Info, Info, Debug}

// parseSyslog reads RFC 5424 (<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD
// MSG) and RFC 3164 ([<PRI>]Mmm dd hh:mm:ss HOST TAG[PID]: MSG).
func (p *Parser) parseSyslog(event []byte, r *Record) bool {
	if !utf8.Valid(event) {
		return false
	}
	b := event
	pri := -1
	if b[0] == '<' {
		end := bytes.IndexByte(b[:min(len(b), 5)], '>')
		if end < 2 {
			return false
		}
		v, err := strconv.Atoi(string(b[1:end]))
		if err != nil || v < 0 || v > 191 {
			return false
		}
		pri = v
		b = b[end+1:]
	}
	if len(b) >= 2 && b[0] == '1' && b[1] == ' ' {
		return p.parse5424(event, b[2:], pri, r)
	}
	t, n, err := p.Time.ParseSyslogPrefix(b)
	if err != nil || n >= len(b) || b[n] != ' ' {
		return false
	}
	b = b[n+1:]
	host, rest, ok := field(b)
	if !ok {
		return false
	}
	r.Time, r.HasTime = t, true
	if pri >= 0 {
		r.Severity = syslogSeverity[pri&7]
		r.add("syslog.facility", facility(pri), Raw)
	}
	r.add("host.name", host, String)
	// TAG[PID]: MSG
	line, _ := firstLine(rest)
	if colon := bytes.Index(line, []byte(": ")); colon > 0 && bytes.IndexByte(line[:colon], ' ') < 0 {
		tag := line[:colon]
		if lb := bytes.IndexByte(tag, '['); lb > 0 && tag[len(tag)-1] == ']' {
			r.add("syslog.app_name", tag[:lb], String)
			r.add("syslog.procid", tag[lb+1:len(tag)-1], String)
		} else {
			r.add("syslog.app_name", tag, String)
		}
		rest = rest[colon+2:]
	}
	r.Body = rest
	return true
}

var facilities = func() (f [24][]byte) {
	for i := range f {
		f[i] = []byte(strconv.Itoa(i))
	}
	return
}()

func facility(pri int) []byte { return facilities[pri>>3] }

func (p *Parser) parse5424(event, b []byte, pri int, r *Record) bool {
	if pri < 0 {
		return false
	}
	ts, b, ok := field(b)
	if !ok {
		return false
	}
	if string(ts) != "-" {
		t, n, err := p.Time.ParseRFC3339Prefix(ts)
		if err != nil || n != len(ts) {
			return false
		}
		r.Time, r.HasTime = t, true
	}
	var parts [4][]byte
	for i := range parts {
		if parts[i], b, ok = field(b); !ok {
			return false
		}
	}
	// STRUCTURED-DATA: "-" or one or more [id k="v" ...] elements.
	var sd []byte
	switch {
	case len(b) > 0 && b[0] == '-':
		b = b[1:]
	case len(b) > 0 && b[0] == '[':
		i := 0
		for i < len(b) && b[i] == '[' {
			inQuote := false
			j := i + 1
			for ; j < len(b); j++ {
				c := b[j]
				if c == '\\' && inQuote {
					j++
					continue
				}
				if c == '"' {
					inQuote = !inQuote
				}
				if c == ']' && !inQuote {
					break
				}
			}
			if j >= len(b) {
				return false
			}
			i = j + 1
		}
		sd = b[:i]
		b = b[i:]
	default:
		return false
	}
	if len(b) > 0 {
		if b[0] != ' ' {
			return false
		}
		b = b[1:]
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // BOM
	r.Severity = syslogSeverity[pri&7]
	r.add("syslog.facility", facility(pri), Raw)
	names := [4]string{"host.name", "syslog.app_name", "syslog.procid", "syslog.msgid"}
	for i, v := range parts {
		if string(v) != "-" {
			r.add(names[i], v, String)
		}
	}
	if sd != nil {
		r.add("syslog.structured_data", sd, String)
	}
	r.Body = b
	_ = event
	return true
}
