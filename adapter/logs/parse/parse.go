package parse

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/podkit/podkit/adapter/logs/timestamp"
)

// Parser parses lines with a list of formats, first match wins.
type Parser struct {
	// Formats are tried in order. Empty means Auto.
	Formats []Format
	// Time parses the timestamps (its Location is --default-timezone).
	Time timestamp.Parser
}

// Auto is every format, in the order Parse tries them when sniffing does
// not decide.
var Auto = []Format{JSON, Syslog, Log4j, CLF, Logfmt}

// ParseFormats parses a comma-separated list of format names; "auto" is
// every format with plain text allowed, "none" is no parsing.
func ParseFormats(s string) (formats []Format, auto bool, err error) {
	switch s {
	case "", "auto":
		return Auto, true, nil
	case "none":
		return nil, false, nil
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		f, ok := ParseFormat(name)
		if !ok || f == None {
			return nil, false, fmt.Errorf("unknown format %q (want auto, none, or a list of json, logfmt, clf, log4j, syslog)", name)
		}
		formats = append(formats, f)
	}
	return formats, false, nil
}

// ErrNoMatch is returned when no format of the list matched the line.
var ErrNoMatch = errors.New("no format matched")

// Parse parses event (one line, or several merged by multiline: headers
// are read from the first line, the rest joins the body) into r, which it
// resets first. On failure r holds the event as its body and the error
// names the format that was expected (by the line's first bytes) or
// ErrNoMatch.
func (p *Parser) Parse(event []byte, r *Record) (Format, error) {
	r.Reset()
	formats := p.Formats
	if len(formats) == 0 {
		formats = Auto
	}
	expected := None
	for _, f := range formats {
		if !sniff(f, event) {
			continue
		}
		if expected == None {
			expected = f
		}
		if p.parseAs(f, event, r) {
			r.Format = f
			return f, nil
		}
		r.Reset()
	}
	r.Body = event
	if expected != None {
		return expected, fmt.Errorf("not valid %s", expected)
	}
	return None, ErrNoMatch
}

func (p *Parser) parseAs(f Format, event []byte, r *Record) bool {
	switch f {
	case JSON:
		return p.parseJSON(event, r)
	case Logfmt:
		return p.parseLogfmt(event, r)
	case CLF:
		return p.parseCLF(event, r)
	case Log4j:
		return p.parseLog4j(event, r)
	case Syslog:
		return p.parseSyslog(event, r)
	}
	return false
}

// sniff is a cheap test of whether line may be of format f.
func sniff(f Format, line []byte) bool {
	if len(line) == 0 {
		return false
	}
	switch f {
	case JSON:
		t := trimLeft(line)
		return len(t) > 0 && t[0] == '{'
	case Syslog:
		c := line[0]
		return c == '<' || c >= 'A' && c <= 'S' && len(line) > 15 && line[3] == ' '
	case Log4j:
		return len(line) >= 19 && isDigit(line[0]) && isDigit(line[3]) && (line[4] == '-' || line[4] == '/')
	case CLF:
		i := bytes.IndexByte(line, ' ')
		return i > 0 && bytes.IndexByte(line[:min(len(line), 300)], '[') > i
	case Logfmt:
		eq := bytes.IndexByte(line, '=')
		sp := bytes.IndexByte(line, ' ')
		return eq > 0 && (sp < 0 || eq < sp)
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// firstLine splits event at its first newline.
func firstLine(event []byte) (line, rest []byte) {
	if i := bytes.IndexByte(event, '\n'); i >= 0 {
		return event[:i], event[i:]
	}
	return event, nil
}
