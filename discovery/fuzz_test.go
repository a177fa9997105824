package discovery

import (
	"errors"
	"testing"
)

// FuzzParse: any source string is a Source or an ErrBadSource, never a
// panic. (dns, srv and kubernetes strings only build a source here; none
// is run.)
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"static:10.0.0.1:6379,10.0.0.2:6379", "static:a:1;weight=3;zone=z", "static:[::1]:80",
		"file:/tmp/x.yaml", "dns:redis:6379", "srv:_redis._tcp.example.com", "kubernetes:ns/svc:http",
		"static:;;", "static:a:1;weight=99999999999999999999", ":", "static:[::1:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := Parse(s, Options{})
		if err != nil {
			if !errors.Is(err, ErrBadSource) {
				t.Fatalf("Parse(%q) = %v, not an ErrBadSource", s, err)
			}
			return
		}
		if src.String() != s {
			t.Fatalf("String() = %q, want %q", src.String(), s)
		}
		if st, ok := src.(*static); ok {
			for _, e := range st.set.Endpoints {
				if e.Port < 1 || e.Port > 65535 || e.Weight < 1 || e.Host == "" {
					t.Fatalf("Parse(%q) gave endpoint %+v", s, e)
				}
			}
		}
	})
}

// FuzzParseFile: any file is a set of valid endpoints or an error.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		"endpoints:\n  - address: 10.0.0.1:80\n    weight: 2\n    zone: a\n",
		"endpoints: []\n", `{"endpoints":[{"address":"[::1]:1","ready":false}]}`,
		"endpoints:\n  - address: x\n", "endpoints: &a [*a]\n", "- 1\n- 2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseFile(data)
		if err != nil {
			return
		}
		for _, e := range set.Endpoints {
			if e.Port < 1 || e.Port > 65535 || e.Weight < 1 || e.Host == "" {
				t.Fatalf("endpoint %+v", e)
			}
		}
	})
}
