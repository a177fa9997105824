package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// apiComponents are the podkit commands whose --listen is an API under
// the listen rule (docs/security.md), and its default.
var apiComponents = map[string]string{
	"queue":   "127.0.0.1:8080",
	"metrics": "127.0.0.1:9113",
	"health":  "127.0.0.1:8008",
	"elect":   "127.0.0.1:4040",
	"topz":    "127.0.0.1:8081",
}

// TestListenRule checks every Compose file and Kubernetes manifest under
// deploy/ for command-line values split at a comma by a YAML flow list,
// and against the listen rule, as the components apply it at start:
// a podkit API whose --listen is not on loopback needs TLS (--tls-cert),
// tokens (--token-file) or --insecure-listen, from a flag or its
// PODKIT_ variable; and an --insecure-listen says why in a comment on its
// line or just above it. A file that breaks the rule would start a
// component that exits 2.
func TestListenRule(t *testing.T) {
	var files []string
	for _, pat := range []string{"compose/*/compose.yaml", "kubernetes/*/*.yaml"} {
		m, err := filepath.Glob(filepath.FromSlash(pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("found only %d files", len(files))
	}
	opened := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		problems, n, err := listenProblems(b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		opened += n
		for _, p := range problems {
			t.Errorf("%s: %s", f, p)
		}
	}
	// The rule was applied to something: the examples open APIs.
	if opened < 5 {
		t.Errorf("only %d APIs on a non-loopback --listen found in deploy/: is the check finding the commands?", opened)
	}
}

// TestListenRuleCheck: the check itself, on small files that break the
// rule and files that follow it.
func TestListenRuleCheck(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // "" = no problem
	}{
		{"compose, open and plain", `
services:
  q:
    image: podkit
    command: [queue, --listen=0.0.0.0:8080]
`, "queue --listen 0.0.0.0:8080"},
		{"compose, string command", `
services:
  m:
    image: podkit
    command: metrics --redis=r:6379 --listen :9121
`, "metrics --listen :9121"},
		{"compose, listen from the environment", `
services:
  e:
    image: podkit
    command: [elect, --id=a]
    environment:
      PODKIT_LISTEN: 0.0.0.0:4040
`, "elect --listen 0.0.0.0:4040"},
		{"compose, environment list", `
services:
  e:
    image: podkit
    command: [elect]
    environment: ["PODKIT_LISTEN=0.0.0.0:4040"]
`, "elect --listen 0.0.0.0:4040"},
		{"kubernetes args, open and plain", `
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
      - name: h
        image: podkit:dev
        args: [health, --mysql=x, --listen=0.0.0.0:8008]
`, "health --listen 0.0.0.0:8008"},
		{"a shell script", `
spec:
  containers:
  - image: w
    command:
    - sh
    - -c
    - |
      podkit queue --listen=0.0.0.0:8080 --data-dir=/tmp/q \
        --admin-addr=off &
      podkit worker --queue=http://x
`, "queue --listen 0.0.0.0:8080"},
		{"insecure-listen without a reason", `
services:
  t:
    image: podkit
    command: [topz, --listen=0.0.0.0:8081, --insecure-listen]
`, "no comment"},
		{"insecure-listen with a reason", `
services:
  t:
    image: podkit
    # published on the host's loopback only
    command: [topz, --listen=0.0.0.0:8081, --insecure-listen]
`, ""},
		{"insecure-listen from the environment with a reason", `
services:
  e:
    image: podkit
    command: [elect]
    environment:
      PODKIT_LISTEN: 0.0.0.0:4040
      PODKIT_INSECURE_LISTEN: "true" # to watch it
`, ""},
		{"insecure-listen=false", `
services:
  e:
    image: podkit
    # a reason
    command: [elect, --listen=0.0.0.0:4040, --insecure-listen=false]
`, "elect --listen 0.0.0.0:4040"},
		{"TLS", `
services:
  q:
    image: podkit
    command: [queue, --listen=0.0.0.0:8080, --tls-cert=/c, --tls-key=/k]
`, ""},
		{"tokens, flag with a space", `
services:
  q:
    image: podkit
    command: [queue, --listen, "0.0.0.0:8080", --token-file, /t]
`, ""},
		{"loopback, and the default", `
services:
  q:
    image: podkit
    command: [queue, --listen=127.0.0.1:8080]
  m:
    image: podkit
    command: [metrics, --nginx=http://127.0.0.1/stub_status]
`, ""},
		{"not podkit's: the word alone", `
services:
  n:
    image: nginx
    command: [nginx, -g, "daemon off;"]
  s:
    image: x
    command: [sh, -c, "echo queue --listen=0.0.0.0:1"]
`, ""},
		{"a value split at its comma", `
services:
  q:
    image: podkit
    command: [certs, --dir=/tmp, --server=queue,localhost, --client=w]
`, `"localhost" follows "--server=queue"`},
		{"the same value quoted", `
services:
  q:
    image: podkit
    command: [certs, --dir=/tmp, "--server=queue,localhost", --client=w, --, sh, -c, "x"]
`, ""},
		{"tls-proxy keeps :8443", `
services:
  p:
    image: podkit
    command: [tls-proxy, --listen=:8443, --target=127.0.0.1:8081]
`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, _, err := listenProblems([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(problems, "\n")
			if tt.want == "" && got != "" {
				t.Errorf("problems %q, want none", got)
			}
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("problems %q, want one naming %q", got, tt.want)
			}
		})
	}
}

// listenProblems returns what breaks the listen rule in a YAML file (one
// or more documents), and how many APIs it opens beyond loopback.
func listenProblems(b []byte) (problems []string, opened int, err error) {
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	for {
		var doc any
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			return nil, 0, err
		}
		walkContainers(doc, func(name string, argv []string, env map[string]string) {
			// In a YAML flow list, [a, --x=b,c] is three items: a
			// value with a comma must be quoted.
			for i := 1; i < len(argv); i++ {
				prev := argv[i-1]
				if strings.HasPrefix(prev, "--") && strings.Contains(prev, "=") && !strings.HasPrefix(argv[i], "-") && !strings.ContainsAny(argv[i], " \n") {
					problems = append(problems, fmt.Sprintf("%s: %q follows %q: a value split at a comma? quote the whole argument", name, argv[i], prev))
				}
			}
			for _, inv := range invocations(argv) {
				p, open := checkInvocation(inv, env)
				if open {
					opened++
				}
				if p != "" {
					problems = append(problems, name+": "+p)
				}
			}
		})
	}
	// Every --insecure-listen says why, on its line or within the three
	// lines above it.
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		if !strings.Contains(line, "insecure-listen") && !strings.Contains(line, "INSECURE_LISTEN") {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		ok := strings.Contains(line, " #")
		for j := i - 1; j >= 0 && j >= i-3 && !ok; j-- {
			ok = strings.HasPrefix(strings.TrimSpace(lines[j]), "#")
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("line %d: --insecure-listen with no comment saying why: %s", i+1, strings.TrimSpace(line)))
		}
	}
	return problems, opened, nil
}

// walkContainers calls f for every Compose service and Kubernetes
// container in doc: any mapping with an image, with its command line
// (command, then args) and environment (Compose's environment, as a
// mapping or a list, or Kubernetes' env).
func walkContainers(doc any, f func(name string, argv []string, env map[string]string)) {
	switch v := doc.(type) {
	case map[string]any:
		if _, ok := v["image"]; ok {
			var argv []string
			for _, k := range []string{"command", "args"} {
				switch c := v[k].(type) {
				case string:
					argv = append(argv, strings.Fields(c)...)
				case []any:
					for _, a := range c {
						argv = append(argv, fmt.Sprint(a))
					}
				}
			}
			env := map[string]string{}
			switch e := v["environment"].(type) {
			case map[string]any:
				for k, val := range e {
					env[k] = fmt.Sprint(val)
				}
			case []any:
				for _, kv := range e {
					k, val, _ := strings.Cut(fmt.Sprint(kv), "=")
					env[k] = val
				}
			}
			if e, ok := v["env"].([]any); ok {
				for _, item := range e {
					if m, ok := item.(map[string]any); ok && m["value"] != nil {
						env[fmt.Sprint(m["name"])] = fmt.Sprint(m["value"])
					}
				}
			}
			name := fmt.Sprint(v["image"])
			if n, ok := v["name"]; ok {
				name = fmt.Sprint(n)
			}
			f(name, argv, env)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkContainers(v[k], f)
		}
	case []any:
		for _, x := range v {
			walkContainers(x, f)
		}
	}
}

// shellSep splits a shell script into commands.
var shellSep = regexp.MustCompile(`\\\n|&&|\|\||[;&|\n]`)

// invocations finds the podkit API commands in a command line: argv
// itself when its first word is one (the podkit image, whose entrypoint
// is podkit), and every "podkit COMMAND ..." in it or in a script it runs
// (sh -c '...'). Each is returned from the command's name on.
func invocations(argv []string) [][]string {
	var out [][]string
	if len(argv) > 0 {
		if _, ok := apiComponents[argv[0]]; ok {
			return [][]string{argv}
		}
	}
	// Words, split into commands at shell separators.
	var cmds [][]string
	var cur []string
	for _, a := range argv {
		if !strings.ContainsAny(a, " \n;&|") {
			cur = append(cur, a)
			continue
		}
		// A script: its commands stand alone.
		if len(cur) > 0 {
			cmds = append(cmds, cur)
			cur = nil
		}
		joined := strings.ReplaceAll(a, "\\\n", " ")
		for _, part := range shellSep.Split(joined, -1) {
			cmds = append(cmds, strings.Fields(part))
		}
	}
	cmds = append(cmds, cur)
	for _, c := range cmds {
		for i := 0; i+1 < len(c); i++ {
			if filepath.Base(c[i]) != "podkit" {
				continue
			}
			if _, ok := apiComponents[c[i+1]]; ok {
				out = append(out, c[i+1:])
			}
		}
	}
	return out
}

// checkInvocation applies the rule to one command ([name, flags...]) with
// the container's environment. open reports a non-loopback --listen.
func checkInvocation(inv []string, env map[string]string) (problem string, open bool) {
	name := inv[0]
	flags := map[string]string{}
	for i := 1; i < len(inv); i++ {
		a := inv[i]
		if !strings.HasPrefix(a, "-") || a == "--" {
			if a == "--" {
				break
			}
			continue
		}
		k, v, hasV := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasV {
			v = "true"
			if k != "insecure-listen" && i+1 < len(inv) && !strings.HasPrefix(inv[i+1], "-") {
				v = inv[i+1]
				i++
			}
		}
		flags[k] = v
	}
	get := func(flag string) (string, bool) {
		if v, ok := flags[flag]; ok {
			return v, true
		}
		v, ok := env["PODKIT_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))]
		return v, ok
	}
	listen, ok := get("listen")
	if !ok {
		listen = apiComponents[name]
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Sprintf("%s --listen %q: not host:port", name, listen), false
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return "", false
	}
	_, tls := get("tls-cert")
	_, tokens := get("token-file")
	insecure, _ := get("insecure-listen")
	if tls || tokens || insecure == "true" {
		return "", true
	}
	return fmt.Sprintf("%s --listen %s is reachable from other containers with neither TLS (--tls-cert) nor tokens (--token-file): the component refuses to start; secure it, or add --insecure-listen with a comment saying why", name, listen), true
}
