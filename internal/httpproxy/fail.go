package httpproxy

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"syscall"
)

// What the proxy answers for a backend that failed before answering: a
// 502 or 504 with one line of text that names the backend and what went
// wrong, so that whoever sees the error page knows the proxy is fine and
// where to look, without the system's error text.

// dialError is a failed connect to the backend.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connecting to the target: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

var (
	// errUpgradeH2: a 101 answer to an HTTP/2 request.
	errUpgradeH2 = errors.New("target answered 101 Switching Protocols, which HTTP/2 cannot carry")
	// errUnaskedUpgrade: a 101 answer to a request that did not ask
	// for an upgrade.
	errUnaskedUpgrade = errors.New("target answered 101 Switching Protocols to a request without Upgrade")
)

// failure classifies err, a backend's failure before its answer: the
// status for the client, the BackendError kind, and the text.
func (p *Proxy) failure(b *Backend, err error) (code int, kind, text string) {
	code, kind = http.StatusBadGateway, "read"
	what := "failed before answering"
	var de *dialError
	switch {
	case errors.As(err, &de):
		kind = "dial"
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			what = "refused the connection"
		case errors.Is(err, syscall.ENOENT):
			what = "does not exist"
		case isTimeout(err):
			what = "did not accept the connection within " + b.DialTimeout.String()
		default:
			what = "could not be connected to"
		}
	case errors.Is(err, errBackendWrite):
		kind = "write"
		if isTimeout(err) {
			code, kind = http.StatusGatewayTimeout, "timeout"
			what = "did not read the request within " + p.cfg.IdleTimeout.String()
		} else {
			what = "closed the connection while the request was sent"
		}
	case isTimeout(err):
		code, kind = http.StatusGatewayTimeout, "timeout"
		what = "did not answer within " + p.responseTimeout().String()
	case errors.Is(err, errUpgradeH2):
		kind = "protocol"
		what = "answered with an upgrade (101), which HTTP/2 cannot carry"
	case errors.Is(err, errUnaskedUpgrade):
		kind = "protocol"
		what = "answered with an upgrade (101) that was not asked for"
	case errors.Is(err, errBadRequest) || errors.Is(err, errHeadTooLarge):
		kind = "protocol"
		what = "sent a malformed response"
	case errors.Is(err, errBackendClosed) || errors.Is(err, syscall.ECONNRESET):
		what = "closed the connection before answering"
	}
	return code, kind, p.cfg.Name + ": target " + b.String() + " " + what + "\n"
}

// statusText is the reason phrase for the codes the proxy answers with.
func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return strconv.Itoa(code)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
