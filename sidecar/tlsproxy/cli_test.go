package tlsproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/internal/testdeps"
)

// TestMain lets the test binary act as a podkit binary that has the
// tls-proxy command, for subprocess tests when ./cmd/podkit does not have
// it registered (yet).
func TestMain(m *testing.M) {
	if os.Getenv("TLSPROXY_TEST_AS_PODKIT") == "1" {
		stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		os.Exit(cli.Main(context.Background(), []cli.Command{Command()}, os.Args[1:], stdio))
	}
	os.Exit(m.Run())
}

var (
	podkitOnce sync.Once
	podkitBin  string
	podkitSelf bool
)

// podkitCommand returns a command running `podkit tls-proxy args...`: the
// real binary built from ./cmd/podkit when it has the command, otherwise
// this test binary acting as podkit.
func podkitCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	bin := testdeps.BuildPodkit(t)
	podkitOnce.Do(func() {
		out, _ := exec.Command(bin, "help").Output()
		if strings.Contains(string(out), "tls-proxy") {
			podkitBin = bin
			return
		}
		podkitBin, podkitSelf = os.Args[0], true
	})
	cmd := exec.Command(podkitBin, append([]string{"tls-proxy"}, args...)...)
	if podkitSelf {
		cmd.Env = append(os.Environ(), "TLSPROXY_TEST_AS_PODKIT=1")
	}
	return cmd
}

func TestBadFlagsExit2(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	base := []string{"--admin-addr", "127.0.0.1:0", "--listen", "127.0.0.1:0"}
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no target", []string{"--self-signed"}, "--target: required"},
		{"non-loopback target", []string{"--self-signed", "--target", "10.1.2.3:80"}, "--unsafe-target"},
		{"bad target", []string{"--self-signed", "--target", "nohostport"}, "--target"},
		{"bad mode", []string{"--self-signed", "--target", "127.0.0.1:80", "--mode", "udp"}, "--mode"},
		{"no certificate", []string{"--target", "127.0.0.1:80"}, "--cert"},
		{"cert without key", []string{"--target", "127.0.0.1:80", "--cert", garbage}, "--key"},
		{"self-signed and cert", []string{"--target", "127.0.0.1:80", "--self-signed", "--cert", garbage, "--key", garbage}, "--self-signed"},
		{"unreadable cert", []string{"--target", "127.0.0.1:80", "--cert", filepath.Join(dir, "missing.pem"), "--key", garbage}, "--cert"},
		{"garbage cert", []string{"--target", "127.0.0.1:80", "--cert", garbage, "--key", garbage}, "garbage.pem"},
		{"allow without client-ca", []string{"--self-signed", "--target", "127.0.0.1:80", "--allow-cn", "x"}, "--client-ca"},
		{"bad client-ca", []string{"--self-signed", "--target", "127.0.0.1:80", "--client-ca", garbage}, "--client-ca"},
		{"proxy-protocol in http mode", []string{"--self-signed", "--target", "127.0.0.1:80", "--proxy-protocol"}, "--proxy-protocol"},
		{"bad tls version", []string{"--self-signed", "--target", "127.0.0.1:80", "--min-tls-version", "1.0"}, "--min-tls-version"},
		{"bad duration", []string{"--self-signed", "--target", "127.0.0.1:80", "--idle-timeout", "soon"}, "--idle-timeout"},
		{"negative max-conns", []string{"--self-signed", "--target", "127.0.0.1:80", "--max-conns", "-1"}, "--max-conns"},
		{"negative gc-percent", []string{"--self-signed", "--target", "127.0.0.1:80", "--gc-percent", "-1"}, "--gc-percent"},
		{"bad target-health", []string{"--self-signed", "--target", "127.0.0.1:80", "--target-health", "ftp://x"}, "--target-health"},
		{"unknown flag", []string{"--self-signed", "--target", "127.0.0.1:80", "--bogus"}, "--bogus"},
		{"positional argument", []string{"--self-signed", "--target", "127.0.0.1:80", "extra"}, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := podkitCommand(t, append(append([]string{}, base...), tt.args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; stderr: %s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not name %q", stderr.String(), tt.want)
			}
			if strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Target, ok.SelfSigned = "127.0.0.1:8080", true
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"unix target", func(c *Config) { c.Target = "unix:/run/app.sock" }, nil},
		{"localhost target", func(c *Config) { c.Target = "localhost:80" }, nil},
		{"ipv6 loopback", func(c *Config) { c.Target = "[::1]:80" }, nil},
		{"unsafe target allowed", func(c *Config) { c.Target = "db.internal:80"; c.UnsafeTarget = true }, nil},
		{"hostname needs unsafe", func(c *Config) { c.Target = "app:80" }, []string{"--target", "--unsafe-target"}},
		{"empty unix path", func(c *Config) { c.Target = "unix:" }, []string{"--target"}},
		{"several at once", func(c *Config) {
			c.Listen = "nope"
			c.DialTimeout = 0
			c.ClientCertHeader = "bad header"
		}, []string{"--listen", "--dial-timeout", "--client-cert-header"}},
		{"redirect in tcp mode", func(c *Config) { c.Mode = ModeTCP; c.RedirectHTTP = ":80" }, []string{"--redirect-http"}},
		{"bad allow uri", func(c *Config) { c.ClientCA = "x"; c.AllowSANURI = []string{"not a uri"} }, []string{"--allow-san-uri"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

// TestCommandGCSettings runs the command and reads the garbage
// collector settings it logs: the flag's, or none when GOGC is set.
func TestCommandGCSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string // in the "garbage collector" line
	}{
		{"default", nil, nil, `"gc_percent":400`},
		{"flag", []string{"--gc-percent", "250"}, nil, `"gc_percent":250`},
		{"GOGC wins over the default", nil, []string{"GOGC=150"}, `"gc_percent":0`},
		{"0 is the default", []string{"--gc-percent", "0"}, nil, `"gc_percent":400`},
		{"off", []string{"--gc-percent", "off"}, nil, `"gc_percent":-1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--self-signed", "--target", "127.0.0.1:9", "--listen", "127.0.0.1:0",
				"--admin-addr", "127.0.0.1:0", "--log-level", "debug"}, tt.args...)
			cmd := podkitCommand(t, args...)
			cmd.Env = append(append(cmd.Environ(), "GOGC=", "GOMEMLIMIT="), tt.env...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				if !strings.Contains(line, `"msg":"garbage collector"`) {
					continue
				}
				if !strings.Contains(line, tt.want) {
					t.Errorf("%s does not say %s", line, tt.want)
				}
				return
			}
			t.Fatalf("no garbage collector settings logged (%v)", sc.Err())
		})
	}
}
