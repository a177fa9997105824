package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/podkit/podkit/internal/child"
	"github.com/podkit/podkit/internal/testdeps"
)

// Version is the Kubernetes version the harness builds and runs.
const Version = "v1.36.3"

// BinaryEnv names a kube-apiserver binary to use instead of building one.
const BinaryEnv = "PODKIT_KUBE_APISERVER"

// buildTimeout bounds the first build (measured: 200–300 s on two cores).
const buildTimeout = 30 * time.Minute

// APIServer is a running kube-apiserver.
type APIServer struct {
	// URL is its https address.
	URL string
	// Token is a bearer token of a member of system:masters.
	Token string
	// Config is a client config for it (the token; TLS verified against
	// the server's self-signed certificate).
	Config *rest.Config
	// Kubeconfig is a kubeconfig file with the same credentials.
	Kubeconfig string
	// Etcd is the embedded etcd it stores its objects in.
	Etcd *Etcd

	cmd *exec.Cmd
	log string
}

// CacheDir is where the built binary is kept:
// $XDG_CACHE_HOME/podkit/kube-apiserver-<Version> (~/.cache by default).
func CacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "podkit", "kube-apiserver-"+Version), nil
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binHint string
)

// Binary returns the path of a kube-apiserver binary: $PODKIT_KUBE_APISERVER,
// or the cached build, or — the first time on a machine — a build from
// source (tools/kube-apiserver, through the Go module proxy; minutes and
// about 2.3 GB of memory), cached for every later run. When it cannot be
// had (no go command, no module proxy) the test is skipped, or fails
// under PODKIT_REQUIRE_DEPS=1.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binHint, binErr = findOrBuild() })
	if binErr != nil {
		if binHint == "" {
			t.Fatalf("kubetest: %v", binErr)
			return ""
		}
		if testdeps.Require() {
			t.Fatalf("kubetest: kube-apiserver %s unavailable: %v (%s); %s=1 requires it", Version, binErr, binHint, testdeps.RequireEnv)
			return ""
		}
		t.Skipf("skipping: kube-apiserver %s unavailable: %v (%s)", Version, binErr, binHint)
		return ""
	}
	return binPath
}

// findOrBuild returns the binary, or an error and a hint when it cannot be
// built here (an empty hint means a bug, not a missing dependency).
func findOrBuild() (string, string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
			return "", "", fmt.Errorf("%s=%s is not an executable file", BinaryEnv, p)
		}
		return p, "", nil
	}
	dir, err := CacheDir()
	if err != nil {
		return "", "set XDG_CACHE_HOME or HOME", err
	}
	bin := filepath.Join(dir, "kube-apiserver")
	if isExec(bin) {
		return bin, "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "the cache directory must be writable", err
	}
	// One build per machine: other test binaries wait on the lock.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "the cache directory must be writable", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return "", "", err
		}
		fmt.Fprintf(os.Stderr, "kubetest: another process is building kube-apiserver %s into %s; waiting for it\n", Version, dir)
		stop := progress("still waiting for the kube-apiserver build of another process")
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		stop()
		if err != nil {
			return "", "", err
		}
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExec(bin) {
		return bin, "", nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", "the go command is needed to build it", err
	}
	src, err := toolsDir()
	if err != nil {
		return "", "run the tests from the podkit source tree", err
	}
	fmt.Fprintf(os.Stderr, "kubetest: building kube-apiserver %s for the tests from source (%s) into %s (first time: several minutes, ~2.3 GB RAM; cached after)\n", Version, src, dir)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	tmp := bin + ".tmp"
	ldflags := fmt.Sprintf("-s -w -X k8s.io/component-base/version.gitVersion=%s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36", Version)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", tmp, "-ldflags", ldflags, "k8s.io/kubernetes/cmd/kube-apiserver")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false")
	stop := progress("still building kube-apiserver " + Version)
	out, err := cmd.CombinedOutput()
	stop()
	if err != nil {
		os.Remove(tmp)
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return "", "the build needs the Go module proxy (GOPROXY) and ~2.3 GB of memory", fmt.Errorf("go build in %s: %v: %s", src, err, msg)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", "", err
	}
	fmt.Fprintf(os.Stderr, "kubetest: built kube-apiserver %s in %s\n", Version, time.Since(start).Round(time.Second))
	return bin, "", nil
}

// progressEvery is how often a long build or wait says it is still going.
const progressEvery = 30 * time.Second

// progress prints what, with the time elapsed, to stderr every
// progressEvery until the returned stop is called, so that a build of
// several minutes is not mistaken for a hang.
func progress(what string) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(os.Stderr, "kubetest: %s (%s)\n", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// toolsDir finds tools/kube-apiserver in the source tree holding the
// working directory.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "tools", "kube-apiserver", "go.mod")
		if _, err := os.Stat(p); err == nil {
			return filepath.Dir(p), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("tools/kube-apiserver/go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Start runs a kube-apiserver against a fresh embedded etcd, waits until
// /readyz answers, and stops both when the test ends.
func Start(t testing.TB) *APIServer {
	t.Helper()
	bin := Binary(t)
	if bin == "" {
		return nil
	}
	etcd := StartEtcd(t)
	dir := t.TempDir()
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+`,admin,admin-uid,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeServiceAccountKeys(dir); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	certDir := filepath.Join(dir, "certs")
	logPath := filepath.Join(dir, "kube-apiserver.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--etcd-servers="+etcd.Endpoint,
		"--secure-port="+port,
		"--bind-address="+host,
		"--advertise-address="+host,
		"--cert-dir="+certDir,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--etcd-prefix=/registry",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	child.Prepare(cmd, child.Options{Group: true})
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("kubetest: starting %s: %v", bin, err)
	}
	s := &APIServer{URL: "https://" + addr, Token: token, Etcd: etcd, cmd: cmd, log: logPath}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-exited:
			t.Fatalf("kubetest: kube-apiserver exited during start:\n%s", s.LogTail(40))
		default:
		}
		req, _ := http.NewRequest("GET", s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := insecure.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubetest: kube-apiserver not ready after 2m:\n%s", s.LogTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	insecure.CloseIdleConnections()

	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		t.Fatalf("kubetest: the server's certificate: %v", err)
	}
	s.Config = &rest.Config{Host: s.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	s.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(s.Kubeconfig, kubeconfig(s.URL, token, ca), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// LogTail returns the last n lines of the server's log.
func (s *APIServer) LogTail(n int) string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func kubeconfig(server, token string, ca []byte) []byte {
	caPEM := strings.TrimSpace(string(pemBase64(ca)))
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: admin
    namespace: default
current-context: kubetest
`, server, caPEM, token))
}

func writeServiceAccountKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func pemBase64(b []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(b))
}
