package testdeps

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// DnsmasqDomain is the domain StartDnsmasq's server answers for on its
// own: a name under it that is not in the hosts text gets NXDOMAIN.
// Names outside it are REFUSED (the server has no upstream).
const DnsmasqDomain = "test"

// Dnsmasq is a running dnsmasq serving names a test writes.
type Dnsmasq struct {
	t     testing.TB
	bin   string
	dir   string
	port  int
	ttl   int
	hosts string // path of the addn-hosts file

	mu   sync.Mutex
	proc *process
}

// StartDnsmasq runs dnsmasq (Debian dnsmasq-base) on a free loopback port
// as an authoritative-only server: no upstream, no /etc/hosts, every name
// under DnsmasqDomain local. hosts is a hosts file ("IP NAME..." lines;
// IPv6 addresses give AAAA records) served with a TTL of ttl seconds;
// conf holds extra dnsmasq.conf lines, typically
// srv-host=_SERVICE._PROTO.NAME,TARGET,PORT,PRIORITY,WEIGHT. The server
// is stopped when the test ends.
func StartDnsmasq(t testing.TB, hosts, conf string, ttl int) *Dnsmasq {
	t.Helper()
	bin, err := find("dnsmasq")
	if err != nil {
		unmet(t, "dnsmasq not installed", "apt-get install dnsmasq-base")
		return nil
	}
	d := &Dnsmasq{t: t, bin: bin, dir: t.TempDir(), ttl: ttl}
	d.hosts = filepath.Join(d.dir, "hosts")
	d.writeFiles(hosts, conf)
	for try := 1; ; try++ {
		d.port = nextPort(t)
		err := d.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || try >= startTries {
			t.Fatalf("testdeps: %v", err)
			return nil
		}
	}
	t.Cleanup(d.stop)
	return d
}

// Addr is the server's address (127.0.0.1:PORT), UDP and TCP.
func (d *Dnsmasq) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }

// SetHosts replaces the hosts file and makes dnsmasq read it again
// (SIGHUP). The new records are served once dnsmasq has read the file, a
// moment later: wait for them.
func (d *Dnsmasq) SetHosts(hosts string) {
	d.t.Helper()
	ReplaceFile(d.t, d.hosts, hosts)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		d.t.Fatal("testdeps: SetHosts on a stopped dnsmasq")
	}
	if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatalf("testdeps: SIGHUP to dnsmasq: %v", err)
	}
}

// Restart stops dnsmasq and starts it again on the same port with new
// hosts and conf: SRV records (conf) are only read at start.
func (d *Dnsmasq) Restart(hosts, conf string) {
	d.t.Helper()
	d.stop()
	d.writeFiles(hosts, conf)
	if err := d.start(); err != nil {
		d.t.Fatalf("testdeps: restarting dnsmasq: %v", err)
	}
}

// Stop stops dnsmasq: its port then answers nothing (a dead nameserver).
func (d *Dnsmasq) Stop() { d.stop() }

func (d *Dnsmasq) writeFiles(hosts, conf string) {
	d.t.Helper()
	full := "local=/" + DnsmasqDomain + "/\n" + conf + "\n"
	if err := os.WriteFile(filepath.Join(d.dir, "dnsmasq.conf"), []byte(full), 0o644); err != nil {
		d.t.Fatal(err)
	}
	ReplaceFile(d.t, d.hosts, hosts)
}

var errPortTaken = errors.New("port taken")

func (d *Dnsmasq) start() error {
	args := []string{
		"--keep-in-foreground",
		"--no-resolv", "--no-hosts", "--no-poll",
		"--bind-interfaces", "--listen-address=127.0.0.1",
		"--port=" + strconv.Itoa(d.port),
		"--conf-file=" + filepath.Join(d.dir, "dnsmasq.conf"),
		"--addn-hosts=" + d.hosts,
		"--local-ttl=" + strconv.Itoa(d.ttl),
		"--pid-file=",
		"--log-facility=-",
		"--log-queries",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // dnsmasq would drop to nobody, who cannot read the test's files
	}
	p, err := launch(exec.Command(d.bin, args...), syscall.SIGTERM)
	if err != nil {
		return fmt.Errorf("starting dnsmasq: %w", err)
	}
	// dnsmasq opens its UDP and TCP sockets before it serves either, so a
	// TCP connection accepted means queries are answered.
	if err := p.waitReady(d.Addr(), func(net.Conn) error { return nil }); err != nil {
		out := p.output()
		p.stop()
		if p.exited() && bindFailed(out) {
			return fmt.Errorf("%w: %s", errPortTaken, tail(out, 1024))
		}
		return fmt.Errorf("dnsmasq on %s not ready: %v\n%s", d.Addr(), err, tail(out, 4096))
	}
	d.mu.Lock()
	d.proc = p
	d.mu.Unlock()
	return nil
}

func bindFailed(out []byte) bool {
	s := strings.ToLower(string(out))
	return strings.Contains(s, "in use") || strings.Contains(s, "failed to create listening socket")
}

func (d *Dnsmasq) stop() {
	d.mu.Lock()
	p := d.proc
	d.proc = nil
	d.mu.Unlock()
	if p == nil {
		return
	}
	p.stop()
	if d.t.Failed() {
		d.t.Logf("dnsmasq output:\n%s", tail(p.output(), 8192))
	}
}
