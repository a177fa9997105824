package container

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/secretfile"
	"github.com/podkit/podkit/internal/tlsconf"
)

// APIClient are a podkit client's credentials for a podkit API (the
// worker and the queue CLI towards the queue, --notify hooks towards their
// URLs): a CA to trust, a client certificate, a bearer token. The
// client certificate, its key and the token are read again when they
// change, so rotated ones are used without a restart; the CA bundle is
// read once, when the transport is made.
type APIClient struct {
	// CAFile is a PEM bundle of the CAs that issued the server's
	// certificate (default: the system's).
	CAFile string `json:"ca,omitempty"`
	// CertFile and KeyFile are the client certificate presented to an
	// API with --client-ca.
	CertFile string `json:"cert,omitempty"`
	KeyFile  string `json:"key,omitempty"`
	// TokenFile holds the bearer token sent as Authorization: Bearer
	// (the file's content, without its trailing newline).
	TokenFile string `json:"token_file,omitempty"`
}

// RegisterFlags adds the client's flags to fs, each named prefix+"ca",
// prefix+"cert", prefix+"key" and prefix+"token-file"; what names the
// server in their help ("the queue").
func (c *APIClient) RegisterFlags(fs *flag.FlagSet, prefix, what string) {
	fs.StringVar(&c.CAFile, prefix+"ca", c.CAFile, "PEM CA bundle `file` to verify "+what+"'s TLS certificate (default: the system's)")
	fs.StringVar(&c.CertFile, prefix+"cert", c.CertFile, "client certificate `file` (PEM) to present to "+what)
	fs.StringVar(&c.KeyFile, prefix+"key", c.KeyFile, "private key `file` for --"+prefix+"cert")
	fs.StringVar(&c.TokenFile, prefix+"token-file", c.TokenFile, "`file` holding the bearer token to send to "+what)
}

// Set reports whether any credential is configured.
func (c APIClient) Set() bool { return c != APIClient{} }

// Validate reads every file once, so that a missing, empty or mismatched
// one is an error at start naming its flag (prefix as in RegisterFlags).
func (c APIClient) Validate(prefix string) error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("--%scert and --%skey: give both or neither", prefix, prefix))
	} else if c.CertFile != "" {
		if _, err := tlsconf.LoadPair("--"+prefix+"cert", c.CertFile, "--"+prefix+"key", c.KeyFile); err != nil {
			errs = append(errs, err)
		}
	}
	if c.CAFile != "" {
		if _, err := tlsconf.LoadCA("--"+prefix+"ca", c.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TokenFile != "" {
		if err := checkClientToken(c.TokenFile); err != nil {
			errs = append(errs, fmt.Errorf("--%stoken-file: %w", prefix, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	return nil
}

func checkClientToken(path string) error {
	tok, err := secretfile.Read(path)
	if err != nil {
		return err
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return fmt.Errorf("%s holds more than one word: a client's token file holds the token alone (the API's --token-file lines are NAME ROLES TOKEN)", path)
	}
	return nil
}

// Transport returns base (nil: a clone of http.DefaultTransport) set up
// with c: the CA and client certificate for TLS, and the bearer token on
// every request that has no Authorization header.
func (c APIClient) Transport(base *http.Transport) (http.RoundTripper, error) {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	} else {
		base = base.Clone()
	}
	if base.TLSClientConfig != nil && !base.ForceAttemptHTTP2 {
		// Cloning a Transport that had no TLS config (net/http set up
		// HTTP/2 in it first) gives one that offers h2 in ALPN without
		// speaking it: an API server that takes h2 would then get
		// HTTP/1.1 on an h2 connection. Offer h2 only where the
		// transport sets it up itself.
		tc := base.TLSClientConfig.Clone()
		tc.NextProtos = slices.DeleteFunc(slices.Clone(tc.NextProtos), func(p string) bool { return p == "h2" })
		base.TLSClientConfig = tc
	}
	if c.CAFile != "" || c.CertFile != "" {
		tc := base.TLSClientConfig
		if tc == nil {
			tc = &tls.Config{}
		} else {
			tc = tc.Clone()
		}
		tc.MinVersion = tls.VersionTLS12
		if c.CAFile != "" {
			pool, err := tlsconf.LoadCA("CA", c.CAFile)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = pool
		}
		if c.CertFile != "" {
			pair := &cachedFile[*tls.Certificate]{paths: []string{c.CertFile, c.KeyFile}, load: func() (*tls.Certificate, error) {
				return tlsconf.LoadPair("client certificate", c.CertFile, "key", c.KeyFile)
			}}
			if _, err := pair.get(); err != nil {
				return nil, err
			}
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return pair.get()
			}
		}
		base.TLSClientConfig = tc
	}
	if c.TokenFile == "" {
		return base, nil
	}
	tok := &cachedFile[string]{paths: []string{c.TokenFile}, load: func() (string, error) {
		if err := checkClientToken(c.TokenFile); err != nil {
			return "", err
		}
		return secretfile.Read(c.TokenFile)
	}}
	if _, err := tok.get(); err != nil {
		return nil, err
	}
	return bearer{base: base, tok: tok}, nil
}

// Client returns an http.Client with Transport(base) and timeout.
func (c APIClient) Client(base *http.Transport, timeout time.Duration) (*http.Client, error) {
	rt, err := c.Transport(base)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt, Timeout: timeout}, nil
}

// bearer adds the token to requests without an Authorization header.
type bearer struct {
	base *http.Transport
	tok  *cachedFile[string]
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") != "" {
		return b.base.RoundTrip(r)
	}
	tok, err := b.tok.get()
	if err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+tok)
	return b.base.RoundTrip(r2)
}

// CloseIdleConnections closes the transport's idle connections.
func (b bearer) CloseIdleConnections() { b.base.CloseIdleConnections() }

// cachedFile is a value loaded from files, loaded again when one of them
// changes (size or modification time, looked at most once a second).
// While a changed file does not load (a certificate written before its
// key), the last good value is used.
type cachedFile[T any] struct {
	paths []string
	load  func() (T, error)

	mu      sync.Mutex
	val     T
	ok      bool
	stamp   string
	checked time.Time
}

func (f *cachedFile[T]) get() (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.ok && now.Sub(f.checked) < time.Second {
		return f.val, nil
	}
	f.checked = now
	var stamp strings.Builder
	for _, p := range f.paths {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&stamp, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	if f.ok && stamp.String() == f.stamp {
		return f.val, nil
	}
	v, err := f.load()
	if err != nil {
		if f.ok {
			return f.val, nil
		}
		return v, err
	}
	f.val, f.ok, f.stamp = v, true, stamp.String()
	return v, nil
}
