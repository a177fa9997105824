package multiline

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Builtin returns the Rule of a built-in detector: java, python, go, node,
// or auto (all four).
func Builtin(name string) (*Rule, error) {
	mk, ok := builtins[name]
	if !ok {
		return nil, fmt.Errorf("unknown multiline detector %q (want %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	return &Rule{Name: name, Mode: ContinueThrough, Condition: detectorPattern(mk)}, nil
}

// BuiltinNames lists the built-in detectors.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type detector interface {
	continues(line []byte) bool
}

var builtins = map[string]func() detector{
	"java":   func() detector { return javaDetector{} },
	"node":   func() detector { return javaDetector{} },
	"python": func() detector { return &pythonDetector{} },
	"go":     func() detector { return &goDetector{} },
	"auto": func() detector {
		return &anyDetector{ds: []detector{javaDetector{}, &pythonDetector{}, &goDetector{}}}
	},
}

type detectorPattern func() detector

func (p detectorPattern) NewMatcher() Matcher { return &detectorMatcher{d: p()} }

type detectorMatcher struct{ d detector }

func (m *detectorMatcher) Match(line []byte) bool { return m.d.continues(line) }
func (m *detectorMatcher) observe()               {}

var _ observer = (*detectorMatcher)(nil)

// anyDetector continues an event when any of its detectors does; every
// detector sees every line, so each keeps its own state.
type anyDetector struct{ ds []detector }

func (a *anyDetector) continues(line []byte) bool {
	c := false
	for _, d := range a.ds {
		if d.continues(line) {
			c = true
		}
	}
	return c
}

// javaDetector recognizes the lines of a JVM stack trace (and Node's,
// whose frames are the same "    at ..." lines):
//
//	java.lang.IllegalStateException: boom      (a qualified exception name)
//	    at com.example.App.run(App.java:42)
//	    ... 12 more
//	Caused by: java.io.IOException: disk full
//	Suppressed: ...
type javaDetector struct{}

func (javaDetector) continues(line []byte) bool {
	if len(line) == 0 {
		return false
	}
	if line[0] == ' ' || line[0] == '\t' {
		rest := trimLeft(line)
		return hasPrefix(rest, "at ") || hasPrefix(rest, "...") || hasPrefix(rest, "Caused by:") ||
			hasPrefix(rest, "Suppressed:") || hasPrefix(rest, "nested exception is")
	}
	if hasPrefix(line, "Caused by:") || hasPrefix(line, "Suppressed:") {
		return true
	}
	return isExceptionLine(line)
}

// isExceptionLine reports whether line begins with a qualified Java class
// name ending in Exception, Error or Throwable, followed by ':' or the end
// of the line (java.lang.IllegalStateException: boom).
func isExceptionLine(line []byte) bool {
	i, dots := 0, 0
	for i < len(line) {
		c := line[i]
		if c == '.' {
			if i == 0 || line[i-1] == '.' {
				return false
			}
			dots++
		} else if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$') {
			break
		}
		i++
	}
	if dots == 0 || i == 0 || (i < len(line) && line[i] != ':') {
		return false
	}
	name := line[:i]
	return bytes.HasSuffix(name, []byte("Exception")) || bytes.HasSuffix(name, []byte("Error")) ||
		bytes.HasSuffix(name, []byte("Throwable"))
}

// pythonDetector follows a Python traceback:
//
//	Traceback (most recent call last):         (joins the line before it, as logging.exception writes it)
//	  File "app.py", line 3, in <module>
//	    main()
//	ValueError: bad value                      (the first unindented line ends the frames)
//
//	During handling of the above exception, another exception occurred:
type pythonDetector struct{ state uint8 }

const (
	pyNone uint8 = iota
	pyFrames
	pyAfterException
	pyBlank
	pyChain
)

func (d *pythonDetector) continues(line []byte) bool {
	if hasPrefix(line, "Traceback (most recent call last):") {
		d.state = pyFrames
		return true
	}
	switch d.state {
	case pyFrames:
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return true
		}
		if len(trimLeft(line)) == 0 {
			return true
		}
		d.state = pyAfterException // the exception line itself
		return true
	case pyAfterException, pyBlank:
		switch {
		case len(trimLeft(line)) == 0:
			d.state = pyBlank
			return true
		case hasPrefix(line, "During handling of the above exception") ||
			hasPrefix(line, "The above exception was the direct cause"):
			d.state = pyChain
			return true
		}
	case pyChain:
		if len(trimLeft(line)) == 0 {
			return true
		}
	}
	d.state = pyNone
	return false
}

// goDetector follows a Go panic or goroutine dump from its first line
// ("panic: ", "fatal error: ", "SIGSEGV: ", "goroutine N [...]:") through
// the goroutine headers, function lines, "\tfile:line" lines, "created by"
// lines, register dumps and blank lines.
type goDetector struct{ in bool }

func (d *goDetector) continues(line []byte) bool {
	if isGoStart(line) {
		if d.in && hasPrefix(line, "goroutine ") {
			return true
		}
		d.in = true
		return false
	}
	if !d.in {
		return false
	}
	if isGoDumpLine(line) {
		return true
	}
	d.in = false
	return false
}

func isGoStart(line []byte) bool {
	switch {
	case hasPrefix(line, "panic: "), hasPrefix(line, "fatal error: "):
		return true
	case hasPrefix(line, "goroutine ") && bytes.HasSuffix(line, []byte("]:")):
		return true
	case len(line) > 4 && hasPrefix(line, "SIG"):
		i := bytes.IndexByte(line, ':')
		return i > 3 && i < 12 && isUpper(line[3:i])
	}
	return false
}

func isGoDumpLine(line []byte) bool {
	if len(line) == 0 {
		return true
	}
	switch line[0] {
	case '\t', ' ', '[':
		return true
	}
	if hasPrefix(line, "goroutine ") || hasPrefix(line, "created by ") || hasPrefix(line, "PC=") ||
		hasPrefix(line, "signal ") || hasPrefix(line, "panic(") || hasPrefix(line, "panic: ") ||
		hasPrefix(line, "main.") || hasPrefix(line, "runtime.") || hasPrefix(line, "...additional frames elided...") {
		return true
	}
	// A function line: pkg/path.Func(args) or (*T).Method(...) with no space
	// before the argument list, ending in ")" (or "...)").
	if p := bytes.IndexByte(line, '('); p > 0 && line[len(line)-1] == ')' && bytes.IndexByte(line[:p], ' ') < 0 {
		return true
	}
	// A register: "rax    0x0".
	if i := bytes.IndexByte(line, ' '); i > 0 && i <= 6 && isLowerAlnum(line[:i]) {
		rest := trimLeft(line[i:])
		return hasPrefix(rest, "0x")
	}
	return false
}

func isUpper(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return len(b) > 0
}

func isLowerAlnum(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

func trimLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
