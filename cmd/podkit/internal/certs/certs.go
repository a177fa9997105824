// Package certs implements `podkit certs`: a development certificate
// authority, a server certificate and client certificates written to a
// directory, for podkit's examples and local runs (mutual TLS between the
// queue coordinator and its workers, say). The image is FROM scratch, so
// the examples cannot run openssl; this verb makes the same files.
//
// It is not a production CA: the CA key sits beside the certificates, and
// nothing renews or revokes them. In a cluster use cert-manager or your
// organisation's CA (see docs/certs.md and docs/security.md).
package certs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/podkit/podkit/internal/tlsconf"
)

// Config is what to issue, and where.
type Config struct {
	// Dir receives the files; it is created if missing.
	Dir string
	// Servers are the DNS names and IP addresses of server.crt; none
	// means no server certificate.
	Servers []string
	// Clients are the subject CNs of the client certificates, each
	// written as NAME.crt and NAME.key.
	Clients []string
	// Days is how long the server and client certificates are valid.
	Days int
	// Force overwrites server and client files that exist.
	Force bool
	// KeepExisting keeps server and client files that exist and writes
	// only the missing ones (a Compose one-shot service run again).
	KeepExisting bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{Days: 365} }

// caDays is how long a new development CA is valid: longer than any leaf
// issued from it, so that issuing again later needs no new CA.
const caDays = 10 * 365

// CAName is the subject CN of a new development CA.
const CAName = "podkit development CA"

// nameRE is what a client name may hold: it becomes a file name.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// dnsRE is a DNS name (labels of letters, digits and hyphens; a leading
// "*." for a wildcard).
var dnsRE = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// Validate reports every invalid setting, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("--dir: required: the directory to write the files to"))
	}
	if len(c.Servers) == 0 && len(c.Clients) == 0 {
		errs = append(errs, errors.New("--server, --client: give at least one: nothing to issue"))
	}
	for _, s := range c.Servers {
		if net.ParseIP(s) == nil && (len(s) > 253 || !dnsRE.MatchString(s)) {
			errs = append(errs, fmt.Errorf("--server %q: not a DNS name or an IP address", s))
		}
	}
	seen := map[string]bool{}
	for _, n := range c.Clients {
		switch {
		case !nameRE.MatchString(n) || len(n) > 64:
			errs = append(errs, fmt.Errorf("--client %q: want a name of letters, digits, '.', '_' and '-' (at most 64), not starting with a symbol: it names the files NAME.crt and NAME.key", n))
		case n == "ca" || n == "server":
			errs = append(errs, fmt.Errorf("--client %q: the name is taken by %s.crt", n, n))
		case seen[n]:
			errs = append(errs, fmt.Errorf("--client %q: given twice", n))
		}
		seen[n] = true
	}
	if c.Days < 1 || c.Days > caDays {
		errs = append(errs, fmt.Errorf("--days %d: want 1 to %d", c.Days, caDays))
	}
	if c.Force && c.KeepExisting {
		errs = append(errs, errors.New("--force and --keep-existing: give one or neither"))
	}
	return errors.Join(errs...)
}

// leaf is one certificate to write.
type leaf struct {
	name   string // file base name: "server" or the client's name
	client bool
	hosts  []string // server: DNS names and IPs
}

func (l leaf) files(dir string) (crt, key string) {
	return filepath.Join(dir, l.name+".crt"), filepath.Join(dir, l.name+".key")
}

// Issue writes the files cfg asks for and reports what it did to out.
// It refuses, before writing anything, when a file it would write exists
// (unless Force or KeepExisting). An existing ca.crt and ca.key in Dir are
// used to issue the new certificates instead of making a new CA.
func Issue(cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	var leaves []leaf
	if len(cfg.Servers) > 0 {
		leaves = append(leaves, leaf{name: "server", hosts: cfg.Servers})
	}
	for _, n := range cfg.Clients {
		leaves = append(leaves, leaf{name: n, client: true})
	}

	caCrt, caKey := filepath.Join(cfg.Dir, "ca.crt"), filepath.Join(cfg.Dir, "ca.key")
	ca, err := loadCA(caCrt, caKey, now())
	if err != nil {
		return err
	}
	newCA := ca == nil

	// Decide every leaf before writing anything.
	var write, keep []leaf
	var errs []error
	var conflicts []string
	for _, l := range leaves {
		crt, key := l.files(cfg.Dir)
		existing := slices.DeleteFunc([]string{crt, key}, func(p string) bool { return !exists(p) })
		switch {
		case len(existing) == 0 || cfg.Force:
			write = append(write, l)
		case newCA:
			errs = append(errs, fmt.Errorf("%s: exists, but there is no CA in %s to go with it (ca.crt and ca.key): remove it or give --force", strings.Join(existing, ", "), cfg.Dir))
		case cfg.KeepExisting && len(existing) == 2:
			keep = append(keep, l)
		case cfg.KeepExisting:
			errs = append(errs, fmt.Errorf("%s: exists without its pair: remove it or give --force", existing[0]))
		default:
			conflicts = append(conflicts, existing...)
		}
	}
	if len(conflicts) > 0 {
		errs = append(errs, fmt.Errorf("%s: exist; give --force to replace them, or --keep-existing to keep them", strings.Join(conflicts, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	fmt.Fprintf(out, "podkit certs: for development and examples only (the CA key is in %s); in production use cert-manager or your own CA\n", cfg.Dir)
	if newCA {
		if ca, err = newAuthority(now()); err != nil {
			return err
		}
		if err := writeFile(caKey, ca.KeyPEM, 0o600); err != nil {
			return err
		}
		if err := writeFile(caCrt, ca.CertPEM, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s and ca.key: new CA %q, valid until %s\n", caCrt, ca.Cert.Subject.CommonName, day(ca.Cert.NotAfter))
	} else {
		fmt.Fprintf(out, "using the CA in %s (%q, valid until %s)\n", caCrt, ca.Cert.Subject.CommonName, day(ca.Cert.NotAfter))
	}
	for _, l := range keep {
		crt, _ := l.files(cfg.Dir)
		fmt.Fprintf(out, "kept %s and %s.key: they exist (--keep-existing)\n", crt, l.name)
	}
	for _, l := range write {
		pair, err := issueLeaf(ca, l, now(), cfg.Days)
		if err != nil {
			return err
		}
		cert := pair.Cert
		crt, key := l.files(cfg.Dir)
		if err := writeFile(key, pair.KeyPEM, 0o600); err != nil {
			return err
		}
		if err := writeFile(crt, pair.CertPEM, 0o644); err != nil {
			return err
		}
		what := "client certificate CN=" + cert.Subject.CommonName
		if !l.client {
			what = "server certificate for " + strings.Join(l.hosts, ", ")
		}
		fmt.Fprintf(out, "wrote %s and %s.key: %s, valid until %s\n", crt, l.name, what, day(cert.NotAfter))
	}
	return nil
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// loadCA returns the CA in crt and key, nil when neither exists, or an
// error when only one does or they cannot sign.
func loadCA(crt, key string, now time.Time) (*tlsconf.Authority, error) {
	hasCrt, hasKey := exists(crt), exists(key)
	switch {
	case !hasCrt && !hasKey:
		return nil, nil
	case !hasKey:
		return nil, fmt.Errorf("%s exists without ca.key: cannot issue from it; remove it to make a new CA", crt)
	case !hasCrt:
		return nil, fmt.Errorf("%s exists without ca.crt: remove it to make a new CA", key)
	}
	certPEM, err := os.ReadFile(crt)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(key)
	if err != nil {
		return nil, err
	}
	ca, err := tlsconf.ParseAuthority(certPEM, keyPEM, now)
	switch {
	case errors.Is(err, tlsconf.ErrNotCA):
		return nil, fmt.Errorf("%s: %w", crt, err)
	case err != nil:
		return nil, fmt.Errorf("the CA in the directory cannot be used (remove ca.crt and ca.key to make a new one): %s / %s: %w", crt, key, err)
	}
	return ca, nil
}

func newAuthority(now time.Time) (*tlsconf.Authority, error) {
	return tlsconf.NewAuthority(tlsconf.Request{
		CN:        CAName,
		Org:       []string{"podkit (development only)"},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(caDays * 24 * time.Hour),
	})
}

// issueLeaf signs a certificate for l, valid for days from now (at most until
// the CA expires).
func issueLeaf(ca *tlsconf.Authority, l leaf, now time.Time, days int) (*tlsconf.Pair, error) {
	r := tlsconf.Request{
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(time.Duration(days) * 24 * time.Hour),
	}
	if r.NotAfter.After(ca.Cert.NotAfter) {
		r.NotAfter = ca.Cert.NotAfter
	}
	if l.client {
		r.CN, r.Client = l.name, true
	} else {
		r.CN, r.Server = l.hosts[0], true
		r.DNS, r.IPs = tlsconf.SplitHosts(l.hosts)
	}
	return ca.Issue(r)
}

// writeFile writes b to path with mode, through a temporary file renamed
// over it, so that a reader (a component reloading its certificate)
// never sees half a file.
func writeFile(path string, b []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
