package dnsclient

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// ResolvConfPath is where the system's resolver configuration lives.
const ResolvConfPath = "/etc/resolv.conf"

// Defaults of Config, the same as glibc's and Go's resolvers.
const (
	DefaultNdots    = 1
	DefaultTimeout  = 5 * time.Second
	DefaultAttempts = 2
)

// Limits on the options of resolv.conf, as glibc applies them.
const (
	maxNdots    = 15
	maxTimeout  = 30 * time.Second
	maxAttempts = 5
	maxServers  = 3
)

// Config is what a Client needs to know: where to ask and how to expand
// names. It is what resolv.conf says, or what the caller sets.
type Config struct {
	// Servers are the nameservers (HOST:PORT) asked in turn.
	Servers []string
	// Search are the domains appended to a relative name.
	Search []string
	// Ndots: a name with at least this many dots is tried as it is before
	// the search domains; one with fewer is tried after them.
	Ndots int
	// Timeout bounds each query to one server.
	Timeout time.Duration
	// Attempts is how many times the list of servers is gone through.
	Attempts int
}

func (c Config) withDefaults() Config {
	if c.Ndots < 0 {
		c.Ndots = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	return c
}

// ReadResolvConf reads and parses a resolv.conf file.
func ReadResolvConf(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseResolvConf(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseResolvConf reads the resolv.conf format as glibc does: nameserver
// lines (at most three, port 53), search and domain (the last one of
// them wins), and the options ndots:N, timeout:N and attempts:N (clamped
// to glibc's limits). Other lines and options are ignored, as the system
// resolver ignores them. A file without a usable nameserver is an error:
// a resolver would otherwise guess.
func ParseResolvConf(data []byte) (Config, error) {
	c := Config{Ndots: DefaultNdots, Timeout: DefaultTimeout, Attempts: DefaultAttempts}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			ip, err := netip.ParseAddr(f[1])
			if err != nil {
				bad = append(bad, f[1])
				continue
			}
			if len(c.Servers) < maxServers {
				c.Servers = append(c.Servers, net.JoinHostPort(ip.String(), "53"))
			}
		case "domain":
			c.Search = nil
			if len(f) > 1 && f[1] != "." {
				c.Search = []string{absolute(f[1])}
			}
		case "search":
			c.Search = nil
			for _, d := range f[1:] {
				if d == "." {
					continue
				}
				c.Search = append(c.Search, absolute(d))
			}
		case "options":
			for _, o := range f[1:] {
				k, v, ok := strings.Cut(o, ":")
				if !ok {
					continue
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					continue
				}
				switch k {
				case "ndots":
					c.Ndots = min(n, maxNdots)
				case "timeout":
					c.Timeout = min(time.Duration(max(n, 1))*time.Second, maxTimeout)
				case "attempts":
					c.Attempts = min(max(n, 1), maxAttempts)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Config{}, err
	}
	if len(c.Servers) == 0 {
		if len(bad) > 0 {
			return Config{}, fmt.Errorf("no usable nameserver line (%q is not an IP address)", bad[0])
		}
		return Config{}, fmt.Errorf("no nameserver line")
	}
	return c, nil
}

// absolute adds the trailing dot of a fully qualified name.
func absolute(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// Names returns the fully qualified names to try for name, in order, as
// the Go and glibc resolvers do: a name with a trailing dot is only
// itself; one with at least Ndots dots is tried as it is, then with each
// search domain; one with fewer dots with the search domains first.
func (c Config) Names(name string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	var out []string
	asIs := strings.Count(name, ".") >= c.Ndots
	if asIs {
		out = append(out, name+".")
	}
	for _, d := range c.Search {
		if len(name)+1+len(d) > 254 {
			continue
		}
		out = append(out, name+"."+d)
	}
	if !asIs {
		out = append(out, name+".")
	}
	return out
}
