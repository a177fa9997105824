// Package connectproxy stands in for github.com/wrouesnel/go.connect-proxy-scheme
// in the benchmark build of ghostunnel: the Go module proxy does not serve
// that module, and ghostunnel only uses it to register an "http" scheme for
// client mode's --connect-proxy, which bench/tls.sh never uses (ghostunnel
// runs in server mode there). Dialing through it fails with ErrUnavailable.
package connectproxy

import (
	"errors"
	"net/url"

	"golang.org/x/net/proxy"
)

// ErrUnavailable is returned for every dial: this build has no HTTP
// CONNECT proxy support.
var ErrUnavailable = errors.New("HTTP CONNECT proxies are not supported in podkit's benchmark build of ghostunnel")

// ConnectProxy has the signature proxy.RegisterDialerType expects.
func ConnectProxy(*url.URL, proxy.Dialer) (proxy.Dialer, error) {
	return nil, ErrUnavailable
}
