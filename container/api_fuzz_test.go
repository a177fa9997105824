package container

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzTokenFile: readTokenFiles never panics on any content, and every
// token it accepts is found again by matchToken, under its own name and
// roles.
func FuzzTokenFile(f *testing.F) {
	for _, seed := range []string{
		"prod producer " + tokProd + "\n",
		"# comment\n\nprod producer,worker " + tokProd + "\r\nw worker " + tokWork,
		"a producer short\n",
		"a producer " + tokProd + "\na worker " + tokWork + "\n",
		"a producer " + tokProd + "\nb worker " + tokProd + "\n",
		"a boss " + tokProd + "\n",
		"a producer, " + tokProd + "\n",
		"\t  x\tadmin\t" + tokWork + "  \n",
		"a producer " + tokProd + " extra\n",
		"\xff\xfe producer " + tokProd + "\n",
		"",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(dir, "tokens")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		toks, _, err := readTokenFiles([]string{path}, testAccess)
		if err != nil {
			if !strings.Contains(err.Error(), "--token-file") {
				t.Errorf("error %q does not name --token-file", err)
			}
			return
		}
		if len(toks) == 0 {
			t.Fatal("no error and no tokens")
		}
		// Each accepted line, parsed again here, matches its own token.
		n := 0
		for _, line := range strings.Split(content, "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fields := strings.Fields(line)
			got, ok := matchToken(toks, fields[2])
			if !ok {
				t.Fatalf("token of %q not matched", line)
			}
			if got.name != fields[0] || !slices.Equal(got.roles, strings.Split(fields[1], ",")) {
				t.Errorf("token of %q matched %s %v", line, got.name, got.roles)
			}
			for _, r := range got.roles {
				if !testAccess.role(r) {
					t.Errorf("accepted role %q", r)
				}
			}
			if len(fields[2]) < minTokenLen {
				t.Errorf("accepted a %d-character token", len(fields[2]))
			}
			n++
		}
		if n != len(toks) {
			t.Errorf("%d lines, %d tokens", n, len(toks))
		}
		if _, ok := matchToken(toks, ""); ok {
			t.Error("the empty string matched a token")
		}
	})
}

// FuzzAllowEntry: parseAllowEntries never panics, and an accepted entry
// grants only declared roles to a non-empty identity.
func FuzzAllowEntry(f *testing.F) {
	for _, seed := range []string{"worker=worker-1", "worker,producer=spiffe://cluster.local/ns/q/sa/w", "bare", "boss=x", "worker=", "=x", "a=b=c", ",=x", "worker,,admin=x", "CN=x,O=y", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		s := APISecurity{AllowCN: []string{entry}, AllowSANDNS: []string{entry}, AllowSANURI: []string{entry}}
		entries, err := parseAllowEntries(s, testAccess)
		if err != nil {
			return
		}
		if len(entries) != 3 {
			t.Fatalf("%d entries for 3 lists", len(entries))
		}
		for _, e := range entries {
			if len(e.roles) == 0 {
				t.Errorf("%q grants no role", entry)
			}
			for _, r := range e.roles {
				if !testAccess.role(r) {
					t.Errorf("%q grants undeclared role %q", entry, r)
				}
			}
			if _, id, _ := strings.Cut(e.match, ":"); id == "" || !strings.HasSuffix(entry, id) {
				t.Errorf("%q: identity %q", entry, e.match)
			}
		}
	})
}
