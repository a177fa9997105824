package health

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/podkit/podkit/adapter/internal/adaptertest"
	"github.com/podkit/podkit/internal/testdeps"
)

const k8sExample = "../../deploy/kubernetes/mariadb-health/mariadb-health.yaml"

// manifestDocs decodes every document of a multi-document YAML file.
func manifestDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

// dig follows keys (strings for maps, ints for lists) into v.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func kubeObject(docs []map[string]any, kind string) map[string]any {
	for _, d := range docs {
		if d["kind"] == kind {
			return d
		}
	}
	return nil
}

// kubeContainer finds a container or init container by name.
func kubeContainer(sts map[string]any, name string) map[string]any {
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := dig(sts, "spec", "template", "spec", list).([]any)
		for _, c := range cs {
			if m, _ := c.(map[string]any); m["name"] == name {
				return m
			}
		}
	}
	return nil
}

// TestKubernetesExample runs the Kubernetes example's own database
// account and adapter flags against a real MariaDB: the init script's
// grants must let the adapter's check, with the manifest's --max-lag,
// pass. It also holds the manifest to the probe rule: the database's
// liveness must not depend on a database query (a missing grant or a slow
// query must not restart the database).
func TestKubernetesExample(t *testing.T) {
	docs := manifestDocs(t, k8sExample)
	cm := kubeObject(docs, "ConfigMap")
	script, _ := dig(cm, "data", "start.sh").(string)
	m := regexp.MustCompile(`(?s)cat > /tmp/init.sql <<SQL\n(.*?)\n\s*SQL\n`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no init.sql here-document in the ConfigMap's start.sh:\n%s", script)
	}
	var stmts []string
	for _, line := range strings.Split(m[1], "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, "'root'@") {
			continue // the test server's root stays as it is
		}
		line = strings.ReplaceAll(line, "$(cat /secrets/health-password)", "h3alth")
		if strings.Contains(line, "$(") {
			t.Fatalf("unexpected substitution in %q", line)
		}
		stmts = append(stmts, strings.TrimSuffix(line, ";"))
	}

	sts := kubeObject(docs, "StatefulSet")
	health := kubeContainer(sts, "health")
	db := kubeContainer(sts, "mariadb")
	if health == nil || db == nil {
		t.Fatal("the StatefulSet has no health or mariadb container")
	}
	for _, probe := range []string{"livenessProbe"} {
		p, _ := db[probe].(map[string]any)
		if path, _ := dig(p, "httpGet", "path").(string); path != "" {
			t.Errorf("mariadb %s is GET %s: liveness must not depend on a database query", probe, path)
		}
	}
	if path, _ := dig(db, "readinessProbe", "httpGet", "path").(string); !strings.HasPrefix(path, "/readyz") {
		t.Errorf("mariadb readinessProbe is %q, want the adapter's /readyz", path)
	}

	admin, ok := adaptertest.MariaDB(t)
	if !ok {
		return
	}
	adaptertest.SQLAdmin(t, admin, testdeps.MariaDBPassword, stmts...)

	_, pwFile := adaptertest.SplitDSN(t, "", "h3alth")
	_, port, _ := strings.Cut(admin.Addr, ":")
	var args []string
	for _, a := range dig(health, "args").([]any)[1:] { // after "health"
		s := a.(string)
		switch {
		case strings.HasPrefix(s, "--password-file="):
			s = "--password-file=" + pwFile
		case strings.HasPrefix(s, "--listen="), strings.HasPrefix(s, "--admin-addr="),
			strings.HasPrefix(s, "--tls-"), strings.HasPrefix(s, "--client-ca"),
			strings.HasPrefix(s, "--allow-"), strings.HasPrefix(s, "--token-file"):
			continue // the pod's address, and files mounted in the pod
		}
		args = append(args, strings.Replace(s, "127.0.0.1:3306", "127.0.0.1:"+port, 1))
	}
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("the manifest's args %v: %v", args, err)
	}
	if cfg.MaxLag == 0 {
		t.Fatalf("the manifest's args %v set no --max-lag: the example should check the lag", args)
	}
	cfg.Listen = "127.0.0.1:0"
	r := start(t, cfg)
	body := waitStatus(t, r.base+"/readyz", 200)
	if last := body["last"].(map[string]any); last["replication_lag_seconds"] != 0.0 {
		t.Fatalf("the manifest's account does not read the replication status: %v", body)
	}
}
