package lint

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestNoInternalTypesInAPI fails naming every exported function, method,
// field, variable, constant or alias of a non-internal package of the
// module whose type mentions a type from an internal package: an importer
// could call it but never name what it takes or returns. The packages are
// read from their compiler export data (go list -export), which is the API
// as the type checker sees it.
func TestNoInternalTypesInAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the module (go list -export)")
	}
	l := loadExports(t)
	checked := 0
	var problems []string
	for _, path := range l.own {
		if isInternal(path) {
			continue
		}
		pkg, err := l.imp.Import(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if pkg.Name() == "main" {
			continue
		}
		checked++
		problems = append(problems, internalInAPI(pkg)...)
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages; the listing is broken", checked)
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestInternalInAPIFinds: the check reports what it is for (so that a
// clean run means something).
func TestInternalInAPIFinds(t *testing.T) {
	l := loadExports(t)
	const src = `package p

import "github.com/podkit/podkit/internal/testdeps"

type T struct {
	Buf    *testdeps.Buffer
	hidden testdeps.Buffer
}

type Alias = testdeps.Buffer

func (T) Chunks(n int) []testdeps.Chunks { return nil }
func (T) fine() testdeps.Buffer         { return testdeps.Buffer{} }

func F(f func(map[string]*testdeps.Proc)) {}
func G() string                            { return "" }

var V = testdeps.ErrAgain
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := (&types.Config{Importer: l.imp}).Check("example.com/p", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(internalInAPI(pkg), "\n")
	for _, want := range []string{
		"example.com/p.T.Buf: field *github.com/podkit/podkit/internal/testdeps.Buffer",
		"example.com/p.Alias:",
		"example.com/p.T.Chunks:",
		"example.com/p.F:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("not reported: %s\ngot:\n%s", want, got)
		}
	}
	for _, bad := range []string{"hidden", "fine", "p.G", "p.V"} {
		if strings.Contains(got, bad) {
			t.Errorf("reported %s, which is no internal type in the API:\n%s", bad, got)
		}
	}
}

type exports struct {
	own []string // the module's packages
	imp types.Importer
}

// loadExports lists the module's packages and the export data of every
// package they depend on.
func loadExports(t *testing.T) *exports {
	t.Helper()
	mod, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module := strings.TrimSpace(string(mod))
	cmd := exec.Command("go", "list", "-e", "-export", "-deps",
		"-f", "{{.ImportPath}}\t{{.Export}}\t{{if .Module}}{{.Module.Path}}{{end}}\t{{if .Error}}{{.Error}}{{end}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	files := map[string]string{}
	l := &exports{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 4)
		if len(f) != 4 {
			continue
		}
		if f[3] != "" {
			t.Fatalf("go list: %s: %s", f[0], f[3])
		}
		files[f[0]] = f[1]
		if f[2] == module && f[1] != "" { // no export data: tests only
			l.own = append(l.own, f[0])
		}
	}
	l.imp = importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		file, ok := files[path]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
	return l
}

// isInternal reports whether path is an internal package (or under one).
func isInternal(path string) bool {
	return strings.HasSuffix(path, "/internal") || strings.Contains(path, "/internal/") || strings.HasPrefix(path, "internal/") || path == "internal"
}

// internalInAPI returns one line for each exported object of pkg whose
// type mentions a type from an internal package.
func internalInAPI(pkg *types.Package) []string {
	var out []string
	report := func(name, what string, typ types.Type) {
		if bad := internalNamed(typ, map[types.Type]bool{}); bad != "" {
			out = append(out, fmt.Sprintf("%s.%s: %s %s mentions internal type %s", pkg.Path(), name, what, typ, bad))
		}
	}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		switch obj := obj.(type) {
		case *types.Func:
			report(name, "func", obj.Type())
		case *types.Var:
			report(name, "var", obj.Type())
		case *types.Const:
			report(name, "const", obj.Type())
		case *types.TypeName:
			if obj.IsAlias() {
				report(name, "alias of", types.Unalias(obj.Type()))
				continue
			}
			named, ok := obj.Type().(*types.Named)
			if !ok {
				continue
			}
			for m := range named.Methods() {
				if m.Exported() {
					report(name+"."+m.Name(), "method", m.Type())
				}
			}
			switch u := named.Underlying().(type) {
			case *types.Struct:
				for f := range u.Fields() {
					if f.Exported() {
						report(name+"."+f.Name(), "field", f.Type())
					}
				}
			case *types.Interface:
				for m := range u.ExplicitMethods() {
					if m.Exported() {
						report(name+"."+m.Name(), "method", m.Type())
					}
				}
				for e := range u.EmbeddedTypes() {
					report(name, "embeds", e)
				}
			}
		}
	}
	return out
}

// internalNamed returns the first named type from an internal package
// that typ is or is built from (not looking inside named types, whose own
// exported parts are checked where they are declared), or "".
func internalNamed(typ types.Type, seen map[types.Type]bool) string {
	if seen[typ] {
		return ""
	}
	seen[typ] = true
	switch t := typ.(type) {
	case *types.Alias:
		return internalNamed(types.Unalias(t), seen)
	case *types.Named:
		if p := t.Obj().Pkg(); p != nil && isInternal(p.Path()) {
			return p.Path() + "." + t.Obj().Name()
		}
		for a := range t.TypeArgs().Types() {
			if bad := internalNamed(a, seen); bad != "" {
				return bad
			}
		}
	case *types.Pointer:
		return internalNamed(t.Elem(), seen)
	case *types.Slice:
		return internalNamed(t.Elem(), seen)
	case *types.Array:
		return internalNamed(t.Elem(), seen)
	case *types.Chan:
		return internalNamed(t.Elem(), seen)
	case *types.Map:
		if bad := internalNamed(t.Key(), seen); bad != "" {
			return bad
		}
		return internalNamed(t.Elem(), seen)
	case *types.Signature:
		for _, tup := range []*types.Tuple{t.Params(), t.Results()} {
			for v := range tup.Variables() {
				if bad := internalNamed(v.Type(), seen); bad != "" {
					return bad
				}
			}
		}
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() {
				if bad := internalNamed(f.Type(), seen); bad != "" {
					return bad
				}
			}
		}
	case *types.Interface:
		for m := range t.Methods() {
			if bad := internalNamed(m.Type(), seen); bad != "" {
				return bad
			}
		}
	}
	return ""
}
