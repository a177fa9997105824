package container

// Who may call what, in one place for every component's API (the listener
// on --listen): TLS from files, reloaded; client certificates from a CA,
// narrowed by allow-lists that grant roles; bearer tokens from files, each
// with a name and roles; and the one rule for where an API may listen
// without any of these. A component declares its roles and which role
// each request needs (Access); OpenAPI does the rest.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/tlsconf"
)

// APISecurity are the settings of a component's API listener (--listen),
// the same flags in every component.
type APISecurity struct {
	// TLSCert and TLSKey serve the API over TLS. They are reloaded on
	// SIGHUP and when the files change (as tls-proxy's --cert/--key).
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// ClientCA accepts client certificates issued by these CAs (needs
	// TLS). A verified certificate has the roles its allow-list entry
	// grants; with no allow-list, every role.
	ClientCA string `json:"client_ca,omitempty"`
	// AllowCN, AllowSANDNS and AllowSANURI are tls-proxy's allow-lists,
	// each entry "[ROLE,...=]IDENTITY": a certificate matching one entry
	// has that entry's roles (every role when the entry names none); a
	// certificate matching none is refused with 403.
	AllowCN     []string `json:"allow_cn,omitempty"`
	AllowSANDNS []string `json:"allow_san_dns,omitempty"`
	AllowSANURI []string `json:"allow_san_uri,omitempty"`
	// TokenFiles hold bearer tokens, one per line: "NAME ROLE[,ROLE...]
	// TOKEN" (blank lines and # comments ignored). They are reloaded on
	// SIGHUP and when they change.
	TokenFiles []string `json:"token_files,omitempty"`
	// InsecureListen accepts a --listen reachable from other hosts with
	// neither TLS nor tokens.
	InsecureListen bool `json:"insecure_listen,omitempty"`
}

// RegisterFlags adds the API's security flags to fs.
func (s *APISecurity) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.TLSCert, "tls-cert", s.TLSCert, "serve the API over TLS with this PEM certificate chain `file` (reloaded on SIGHUP and on change)")
	fs.StringVar(&s.TLSKey, "tls-key", s.TLSKey, "PEM private key `file` for --tls-cert")
	fs.StringVar(&s.ClientCA, "client-ca", s.ClientCA, "PEM CA bundle `file`: accept client certificates issued by it (needs --tls-cert)")
	fs.Var((*cli.StringList)(&s.AllowCN), "allow-cn", "accept client certificates whose subject CN is `[ROLE,...=]NAME`, with those roles (default: every role) (repeatable)")
	fs.Var((*cli.StringList)(&s.AllowSANDNS), "allow-san-dns", "accept client certificates with this DNS SAN: `[ROLE,...=]NAME` (repeatable)")
	fs.Var((*cli.StringList)(&s.AllowSANURI), "allow-san-uri", "accept client certificates with this URI SAN: `[ROLE,...=]URI`, e.g. worker=spiffe://cluster.local/ns/jobs/sa/worker (repeatable)")
	fs.Var((*cli.StringList)(&s.TokenFiles), "token-file", "bearer tokens `file`, one per line: NAME ROLE[,ROLE...] TOKEN (repeatable; reloaded on SIGHUP and on change)")
	fs.BoolVar(&s.InsecureListen, "insecure-listen", s.InsecureListen, "allow --listen on a non-loopback address with neither TLS nor tokens (anyone who reaches it may call every endpoint)")
}

// Role is a role a component's API grants.
type Role struct {
	Name string `json:"name"` // e.g. "producer"
	Help string `json:"help"` // what it may do, for docs and errors
}

// Access is what a component declares about its API: its roles, and which
// of them a request needs.
type Access struct {
	// Component names the API in errors and logs ("queue").
	Component string
	// Subsystem prefixes the metrics: podkit_<Subsystem>_api_*.
	Subsystem string
	Roles     []Role
	// Need returns the roles a request may be made with (any one
	// suffices); none means the request is public.
	Need func(r *http.Request) []string
}

func (a Access) role(name string) bool {
	return slices.ContainsFunc(a.Roles, func(r Role) bool { return r.Name == name })
}

func (a Access) roleNames() []string {
	out := make([]string, len(a.Roles))
	for i, r := range a.Roles {
		out[i] = r.Name
	}
	return out
}

// Enabled reports whether any credential is configured: tokens or client
// certificates. Without one, every caller has every role.
func (s APISecurity) Enabled() bool { return len(s.TokenFiles) > 0 || s.ClientCA != "" }

// TLS reports whether the API is served over TLS.
func (s APISecurity) TLS() bool { return s.TLSCert != "" }

// Validate reports every invalid setting, each naming its flag. flag and
// addr are the listener's flag and address (addr "" skips the listen
// rule, for an API given a listener). Roles in the allow-lists must be
// roles a declares.
func (s APISecurity) Validate(flag, addr string, a Access) error {
	var errs []error
	if (s.TLSCert == "") != (s.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key: give both or neither"))
	}
	if s.ClientCA != "" && s.TLSCert == "" {
		errs = append(errs, errors.New("--client-ca: client certificates need TLS: give --tls-cert and --tls-key"))
	}
	if s.ClientCA == "" && len(s.AllowCN)+len(s.AllowSANDNS)+len(s.AllowSANURI) > 0 {
		errs = append(errs, errors.New("--allow-cn, --allow-san-dns, --allow-san-uri: need --client-ca"))
	}
	if _, err := parseAllowEntries(s, a); err != nil {
		errs = append(errs, err)
	}
	if addr != "" {
		if err := s.listenRule(flag, addr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &cli.UsageError{Msg: err.Error()}
	}
	return nil
}

// listenRule is the rule for every API: on a loopback address anything
// goes; elsewhere the API needs TLS or tokens, or --insecure-listen.
func (s APISecurity) listenRule(flag, addr string) error {
	if IsLoopbackAddr(addr) || s.InsecureListen || s.TLS() || len(s.TokenFiles) > 0 {
		return nil
	}
	return fmt.Errorf("%s %s is reachable from other hosts, and the API has neither TLS (--tls-cert, --tls-key) nor tokens (--token-file): anyone who reaches it could call every endpoint; secure it, listen on loopback, or accept that with --insecure-listen", flag, addr)
}

// IsLoopbackAddr reports whether a host:port listen address is on
// loopback only: localhost or a loopback IP. An empty host (every
// interface) or any other name is not.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// allowEntry is one --allow-* entry with the roles it grants.
type allowEntry struct {
	list  tlsconf.AllowList // exactly one identity
	match string            // "cn:NAME", "dns:NAME", "uri:URI"
	roles []string
}

// parseAllowEntries splits each "[ROLE,...=]IDENTITY" entry. The part
// before the first "=" is a role list when it looks like one (letters,
// digits, -, _ and commas); an identity that itself holds "=" needs a
// role list in front.
func parseAllowEntries(s APISecurity, a Access) ([]allowEntry, error) {
	var out []allowEntry
	var errs []error
	add := func(flag, kind string, vals []string) {
		for _, v := range vals {
			e := allowEntry{roles: a.roleNames()}
			id := v
			if before, after, ok := strings.Cut(v, "="); ok && roleListLike(before) {
				id = after
				e.roles = strings.Split(before, ",")
				for _, r := range e.roles {
					if !a.role(r) {
						errs = append(errs, fmt.Errorf("%s %s: %q is not a role of %s (roles: %s)", flag, v, r, a.Component, strings.Join(a.roleNames(), ", ")))
					}
				}
			}
			if id == "" {
				errs = append(errs, fmt.Errorf("%s %q: empty identity", flag, v))
				continue
			}
			switch kind {
			case "cn":
				e.list.CN = []string{id}
			case "dns":
				e.list.DNS = []string{id}
			case "uri":
				e.list.URI = []string{id}
			}
			e.match = kind + ":" + id
			out = append(out, e)
		}
	}
	add("--allow-cn", "cn", s.AllowCN)
	add("--allow-san-dns", "dns", s.AllowSANDNS)
	add("--allow-san-uri", "uri", s.AllowSANURI)
	return out, errors.Join(errs...)
}

func roleListLike(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ',') {
			return false
		}
	}
	return true
}

// minTokenLen is the shortest token accepted: shorter ones can be guessed.
const minTokenLen = 16

// token is one configured bearer token; only its hash is kept.
type token struct {
	name  string
	roles []string
	file  string
	line  int
	hash  [32]byte
}

// errWorldReadable marks a token file that every user may read; it is a
// warning, not a refusal.
var errWorldReadable = errors.New("is readable by every user")

// readTokenFiles reads every token file. warnings are the files that are
// world-readable.
func readTokenFiles(files []string, a Access) (toks []token, warnings []string, err error) {
	names := map[string]string{}
	hashes := map[[32]byte]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--token-file: %w", err)
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o004 != 0 {
			warnings = append(warnings, fmt.Sprintf("--token-file %s %v (mode %#o): make it 0600, or mount the Secret with defaultMode 0440 and an fsGroup", f, errWorldReadable, fi.Mode().Perm()))
		}
		n := 0
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			at := fmt.Sprintf("--token-file %s:%d", f, i+1)
			fields := strings.Fields(line)
			if len(fields) != 3 {
				return nil, nil, fmt.Errorf("%s: want NAME ROLE[,ROLE...] TOKEN, found %d fields", at, len(fields))
			}
			t := token{name: fields[0], roles: strings.Split(fields[1], ","), file: f, line: i + 1, hash: sha256.Sum256([]byte(fields[2]))}
			for _, r := range t.roles {
				if !a.role(r) {
					return nil, nil, fmt.Errorf("%s: %q is not a role of %s (roles: %s)", at, r, a.Component, strings.Join(a.roleNames(), ", "))
				}
			}
			if len(fields[2]) < minTokenLen {
				return nil, nil, fmt.Errorf("%s: token %q is shorter than %d characters, which can be guessed (make one with: head -c 32 /dev/urandom | base64)", at, t.name, minTokenLen)
			}
			if prev, dup := names[t.name]; dup {
				return nil, nil, fmt.Errorf("%s: name %q is already used at %s", at, t.name, prev)
			}
			if prev, dup := hashes[t.hash]; dup {
				return nil, nil, fmt.Errorf("%s: token %q is the same token as %s: give each its own", at, t.name, prev)
			}
			names[t.name], hashes[t.hash] = at, at
			toks = append(toks, t)
			n++
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("--token-file %s: no tokens in it (lines are NAME ROLE[,ROLE...] TOKEN)", f)
		}
	}
	return toks, warnings, nil
}

// matchToken returns the token whose hash equals the hash of presented.
// Every configured token is compared, with subtle.ConstantTimeCompare, so
// the time taken says nothing about which token, or how much of one,
// matched; comparing hashes hides the length.
func matchToken(toks []token, presented string) (token, bool) {
	h := sha256.Sum256([]byte(presented))
	found := -1
	for i := range toks {
		if subtle.ConstantTimeCompare(toks[i].hash[:], h[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return token{}, false
	}
	return toks[found], true
}

// credentials is one loaded generation: the TLS material and the tokens.
type credentials struct {
	tls      *tlsconf.Material
	tokens   []token
	warnings []string
}

// APIConfig is what OpenAPI needs.
type APIConfig struct {
	// Flag and Addr are the listener's flag ("--listen") and address;
	// Listener, if set, is used instead of listening on Addr.
	Flag     string
	Addr     string
	Listener net.Listener
	Security APISecurity
	Access   Access
}

// API is a component's API listener with its credentials: Handler guards
// a component's handler, Serve serves it. Make it with OpenAPI.
type API struct {
	cfg      APIConfig
	h        *Host
	ln       net.Listener
	tls      *tlsconf.Store
	entries  []allowEntry
	creds    atomic.Pointer[credentials]
	denied   *prometheus.CounterVec
	reloader *Reloader[*credentials]
	rejects  *denyLog
	realm    string
	warnings []string
}

// DeniedReasons are the values of the reason label of
// podkit_<subsystem>_api_denied_total.
var DeniedReasons = []string{"no_credential", "bad_token", "token_in_query", "cert_not_allowed", "wrong_role", "tls_handshake"}

// OpenAPI listens on cfg.Addr (or takes cfg.Listener), loads the
// certificates and tokens, applies the listen rule to the bound address,
// registers the API's metrics with h and starts reloading the files until
// ctx ends. Any error is fatal: a component that cannot load its
// credentials does not start.
func OpenAPI(ctx context.Context, h *Host, cfg APIConfig) (*API, error) {
	if cfg.Flag == "" {
		cfg.Flag = "--listen"
	}
	if cfg.Access.Need == nil || cfg.Access.Subsystem == "" || len(cfg.Access.Roles) == 0 {
		return nil, fmt.Errorf("%s: the component declares no roles (Access.Roles, Access.Need and Access.Subsystem are required)", cfg.Flag)
	}
	s := cfg.Security
	if err := s.Validate(cfg.Flag, "", cfg.Access); err != nil {
		return nil, err
	}
	entries, _ := parseAllowEntries(s, cfg.Access) // validated above
	a := &API{cfg: cfg, h: h, entries: entries, rejects: newDenyLog(), realm: "podkit " + cfg.Access.Component}
	files := tlsconf.Files{CertFlag: "--tls-cert", CertFile: s.TLSCert, KeyFlag: "--tls-key", KeyFile: s.TLSKey, CAFlag: "--client-ca", CAFile: s.ClientCA}
	load := func(context.Context) (*credentials, error) {
		c := &credentials{}
		var err error
		if s.TLS() {
			if c.tls, err = files.Load(); err != nil {
				return nil, err
			}
		}
		if c.tokens, c.warnings, err = readTokenFiles(s.TokenFiles, cfg.Access); err != nil {
			return nil, err
		}
		return c, nil
	}
	watched := append(files.List(), s.TokenFiles...)
	a.reloader = NewReloader(Reload[*credentials]{
		Subsystem: cfg.Access.Subsystem + "_api",
		What:      "API credential set",
		Files:     func() []string { return watched },
		Interval:  time.Second,
		Load:      load,
		Apply: func(c *credentials) error {
			a.install(c)
			return nil
		},
		Attrs: func(c *credentials) []any { return []any{"tokens", len(c.tokens)} },
	})
	c, err := load(ctx)
	if err != nil {
		return nil, &cli.UsageError{Msg: err.Error()}
	}
	if s.TLS() {
		a.tls = tlsconf.NewStore(tlsconf.Server{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, ClientAuth: tls.VerifyClientCertIfGiven}, c.tls)
	}
	a.install(c)

	a.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "podkit_" + cfg.Access.Subsystem + "_api_denied_total",
		Help: "API requests refused, by reason (no_credential, bad_token, token_in_query, cert_not_allowed, wrong_role, tls_handshake) and the role the request needed.",
	}, []string{"reason", "role"})
	if err := h.Registerer().Register(a.denied); err != nil {
		return nil, err
	}
	if _, err := a.reloader.Start(ctx, h); err != nil {
		return nil, err
	}

	ln, err := Listen(cfg.Flag, cfg.Addr, cfg.Listener)
	if err != nil {
		return nil, err
	}
	bound := ln.Addr().String()
	if err := s.listenRule(cfg.Flag, bound); err != nil {
		ln.Close()
		return nil, &cli.UsageError{Msg: err.Error()}
	}
	if !IsLoopbackAddr(bound) {
		switch {
		case !s.TLS() && len(s.TokenFiles) > 0:
			a.warnings = append(a.warnings, "tokens are sent in plaintext: "+cfg.Flag+" "+bound+" is reachable from other hosts without TLS (--tls-cert, --tls-key)")
		case s.InsecureListen && !s.Enabled():
			a.warnings = append(a.warnings, cfg.Flag+" "+bound+" is reachable from other hosts and every caller has every role (--insecure-listen)")
		}
	}
	for _, w := range a.warnings {
		h.Logger().Warn("API: " + w)
	}
	if a.tls != nil {
		ln = tls.NewListener(ln, a.tls.Config())
	}
	a.ln = ln
	a.logAccess(c)
	h.setInfo("api", a.info)
	return a, nil
}

// install makes c the current credentials and logs its warnings.
func (a *API) install(c *credentials) {
	if a.tls != nil && c.tls != nil {
		a.tls.Install(c.tls)
	}
	for _, w := range c.warnings {
		a.logger().Warn("API: " + w)
	}
	a.creds.Store(c)
}

func (a *API) logger() *slog.Logger {
	if a.h != nil {
		return a.h.Logger()
	}
	return slog.Default()
}

// logAccess logs who has which roles, once at start.
func (a *API) logAccess(c *credentials) {
	log := a.logger()
	s := a.cfg.Security
	log.Info("API security", "listen", a.ln.Addr().String(), "tls", s.TLS(), "client_ca", s.ClientCA != "", "tokens", len(c.tokens), "insecure_listen", s.InsecureListen)
	for _, t := range c.tokens {
		log.Info("API access", "token", t.name, "roles", strings.Join(t.roles, ","))
	}
	if s.ClientCA != "" && len(a.entries) == 0 {
		log.Info("API access", "certificate", "any issued by --client-ca", "roles", strings.Join(a.cfg.Access.roleNames(), ","))
	}
	for _, e := range a.entries {
		log.Info("API access", "certificate", e.match, "roles", strings.Join(e.roles, ","))
	}
}

// info is the API's part of GET /info: how it is secured and who has
// which roles (token names, never tokens).
func (a *API) info() any {
	c := a.creds.Load()
	type who struct {
		Token       string   `json:"token,omitempty"`
		Certificate string   `json:"certificate,omitempty"`
		Roles       []string `json:"roles"`
	}
	var access []who
	for _, t := range c.tokens {
		access = append(access, who{Token: t.name, Roles: t.roles})
	}
	if a.cfg.Security.ClientCA != "" && len(a.entries) == 0 {
		access = append(access, who{Certificate: "any issued by --client-ca", Roles: a.cfg.Access.roleNames()})
	}
	for _, e := range a.entries {
		access = append(access, who{Certificate: e.match, Roles: e.roles})
	}
	warnings := slices.Concat(a.warnings, c.warnings)
	return map[string]any{
		"listen":          a.ln.Addr().String(),
		"tls":             a.cfg.Security.TLS(),
		"client_ca":       a.cfg.Security.ClientCA != "",
		"insecure_listen": a.cfg.Security.InsecureListen,
		"roles":           a.cfg.Access.Roles,
		"access":          access,
		"warnings":        warnings,
	}
}

// Addr returns the API's bound address.
func (a *API) Addr() net.Addr { return a.ln.Addr() }

// Listener returns the API's listener (TLS when configured).
func (a *API) Listener() net.Listener { return a.ln }

// Reload reloads the certificates and tokens now, as SIGHUP does.
func (a *API) Reload(ctx context.Context) error { return a.reloader.Reload(ctx) }

// Serve serves srv, its handler guarded by Handler, on the API's listener
// until ctx ends (see ServeHTTP).
func (a *API) Serve(ctx context.Context, srv *http.Server) error {
	srv.Handler = a.Handler(srv.Handler)
	if srv.ErrorLog == nil {
		srv.ErrorLog = a.ErrorLog()
	}
	return ServeHTTP(ctx, a.h, srv, a.ln)
}

// ErrorLog is the http.Server.ErrorLog for a component that serves the
// API's Listener with its own server instead of Serve: failed TLS
// handshakes are counted (reason tls_handshake) and logged as refusals.
func (a *API) ErrorLog() *log.Logger { return log.New(serverLog{a}, "", 0) }

// serverLog is the API server's error log: a failed TLS handshake (a
// client certificate the CA did not issue, or that has expired; a client
// that does not trust the server) is a refusal, counted and logged as
// one; anything else net/http reports is logged at debug level.
type serverLog struct{ a *API }

const handshakeErr = "http: TLS handshake error from "

func (l serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if rest, ok := strings.CutPrefix(msg, handshakeErr); ok {
		peer, why, _ := strings.Cut(rest, ": ")
		if strings.HasSuffix(why, "EOF") || strings.Contains(why, "connection reset") {
			return len(p), nil // a probe or a client that gave up: not a refusal
		}
		l.a.denied.WithLabelValues("tls_handshake", "").Inc()
		r := &http.Request{RemoteAddr: peer, Method: "-", URL: &url.URL{}}
		l.a.rejects.log(l.a.logger(), r, "tls_handshake", "", why)
		return len(p), nil
	}
	l.a.logger().Debug("API server", "error", msg)
	return len(p), nil
}

// identityKey is the context key of a request's Identity.
type identityKey struct{}

// Identity is who made an API request.
type Identity struct {
	// Name is the token's name ("token:NAME"), the certificate's allow
	// entry ("cn:NAME", "dns:NAME", "uri:URI") or subject, or "" when the
	// API takes no credentials.
	Name  string
	Roles []string
}

// CallerOf returns who made r, when r came through an API's Handler.
func CallerOf(r *http.Request) (Identity, bool) {
	id, ok := r.Context().Value(identityKey{}).(Identity)
	return id, ok
}

// Handler guards next: each request is checked against the roles
// Access.Need gives it and refused with 400, 401 or 403 and a JSON error
// naming the role it needed.
func (a *API) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := a.cfg.Access.Need(r)
		c := a.creds.Load()
		if t, ok := tokenInQuery(c.tokens, r); ok {
			who := ""
			if t.name != "" {
				who = fmt.Sprintf(" (it is token %q: rotate it, it is now in URL logs)", t.name)
			}
			a.deny(w, r, http.StatusBadRequest, "token_in_query", need, "tokens go in the Authorization header (Authorization: Bearer TOKEN), never in the URL"+who)
			return
		}
		if len(need) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if !a.cfg.Security.Enabled() {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, Identity{Roles: a.cfg.Access.roleNames()})))
			return
		}
		id, status, reason, msg := a.authenticate(c, r)
		if status != 0 {
			a.deny(w, r, status, reason, need, msg)
			return
		}
		if !slices.ContainsFunc(need, func(n string) bool { return slices.Contains(id.Roles, n) }) {
			a.deny(w, r, http.StatusForbidden, "wrong_role", need, fmt.Sprintf("%s has role %s; %s %s needs role %s", id.Name, strings.Join(id.Roles, ","), r.Method, r.URL.Path, strings.Join(need, " or ")))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// authenticate finds the caller: a bearer token when the request carries
// an Authorization header, else a verified client certificate.
func (a *API) authenticate(c *credentials, r *http.Request) (id Identity, status int, reason, msg string) {
	if auth := r.Header.Get("Authorization"); auth != "" && len(a.cfg.Security.TokenFiles) > 0 {
		scheme, tok, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return id, http.StatusUnauthorized, "bad_token", fmt.Sprintf("Authorization scheme %q: this API takes Authorization: Bearer TOKEN", scheme)
		}
		t, ok := matchToken(c.tokens, strings.TrimSpace(tok))
		if !ok {
			return id, http.StatusUnauthorized, "bad_token", "the bearer token is not one this API knows"
		}
		return Identity{Name: "token:" + t.name, Roles: t.roles}, 0, "", ""
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && a.cfg.Security.ClientCA != "" {
		leaf := r.TLS.VerifiedChains[0][0]
		if len(a.entries) == 0 {
			return Identity{Name: leaf.Subject.String(), Roles: a.cfg.Access.roleNames()}, 0, "", ""
		}
		var roles []string
		name := ""
		for _, e := range a.entries {
			if m, ok := e.list.Match(leaf); ok {
				if name == "" {
					name = m
				}
				for _, r := range e.roles {
					if !slices.Contains(roles, r) {
						roles = append(roles, r)
					}
				}
			}
		}
		if name == "" {
			return id, http.StatusForbidden, "cert_not_allowed", "client certificate " + tlsconf.Identity(leaf) + " is not in --allow-cn, --allow-san-dns or --allow-san-uri"
		}
		return Identity{Name: name, Roles: roles}, 0, "", ""
	}
	var how []string
	if len(a.cfg.Security.TokenFiles) > 0 {
		how = append(how, "a bearer token (Authorization: Bearer TOKEN)")
	}
	if a.cfg.Security.ClientCA != "" {
		how = append(how, "a client certificate issued by --client-ca")
	}
	return id, http.StatusUnauthorized, "no_credential", "no credential: this API needs " + strings.Join(how, " or ")
}

// tokenInQuery reports a request whose query string carries a bearer
// token: an access_token parameter (RFC 6750's URI form), or any value
// that is one of the configured tokens (whose token it is).
func tokenInQuery(toks []token, r *http.Request) (token, bool) {
	if r.URL.RawQuery == "" {
		return token{}, false
	}
	q := r.URL.Query()
	for k, vs := range q {
		for _, v := range vs {
			if len(v) >= minTokenLen {
				if t, ok := matchToken(toks, v); ok {
					return t, true
				}
			}
		}
		if strings.EqualFold(k, "access_token") {
			return token{}, true
		}
	}
	return token{}, false
}

// deny answers a refused request and counts and logs it.
func (a *API) deny(w http.ResponseWriter, r *http.Request, status int, reason string, need []string, msg string) {
	role := strings.Join(need, "|")
	a.denied.WithLabelValues(reason, role).Inc()
	a.rejects.log(a.logger(), r, reason, role, msg)
	body := map[string]any{"error": msg, "reason": reason}
	if len(need) > 0 {
		body["role"] = need[0]
		if len(need) > 1 {
			body["roles"] = need
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+a.realm+`"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// denyLogEvery is how often at most a refused peer is logged per reason.
const denyLogEvery = 10 * time.Second

// denyLog logs refused requests: at most one line per peer address and
// reason per denyLogEvery, each saying how many were not logged since, so
// a scanner cannot flood the log while the operator still sees who was
// turned away and why. It remembers at most denyLogPeers peers.
type denyLog struct {
	mu    sync.Mutex
	now   func() time.Time
	peers map[string]*denySeen
}

type denySeen struct {
	last       time.Time
	suppressed int
}

const denyLogPeers = 4096

func newDenyLog() *denyLog { return &denyLog{now: time.Now, peers: map[string]*denySeen{}} }

func (l *denyLog) log(log *slog.Logger, r *http.Request, reason, role, msg string) {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	key := peer + " " + reason
	l.mu.Lock()
	now := l.now()
	s := l.peers[key]
	if s != nil && now.Sub(s.last) < denyLogEvery {
		s.suppressed++
		l.mu.Unlock()
		return
	}
	n := 0
	if s != nil {
		n = s.suppressed
	}
	if len(l.peers) >= denyLogPeers {
		for k, v := range l.peers {
			if now.Sub(v.last) >= denyLogEvery {
				delete(l.peers, k)
			}
		}
		if len(l.peers) >= denyLogPeers {
			clear(l.peers) // a flood from many peers: start again
		}
	}
	l.peers[key] = &denySeen{last: now}
	l.mu.Unlock()
	log.Warn("API request refused", "reason", reason, "peer", peer, "method", r.Method, "path", r.URL.Path, "role", role, "error", msg, "suppressed", n)
}
