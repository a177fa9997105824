package container

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"strings"
	"testing"
)

// TestTokenComparisonIsConstantTime reads api.go: matchToken compares
// with crypto/subtle.ConstantTimeCompare and looks at every token (no
// return or break in its loop), and nothing in the file compares a token
// or a token's hash with ==, !=, bytes.Equal, strings.Compare and the
// like. Each rule is also checked to catch the mistake it is for.
func TestTokenComparisonIsConstantTime(t *testing.T) {
	src, err := os.ReadFile("api.go")
	if err != nil {
		t.Fatal(err)
	}
	if problems := timingProblems(t, string(src)); len(problems) > 0 {
		t.Errorf("api.go:\n%s", strings.Join(problems, "\n"))
	}

	// The check fails on each mistake it guards against.
	mutants := []struct{ name, from, to, want string }{
		{"hash compared with ==",
			"if subtle.ConstantTimeCompare(toks[i].hash[:], h[:]) == 1 {",
			"if toks[i].hash == h {", "=="},
		{"early return in the loop",
			"\t\t\tfound = i\n",
			"\t\t\treturn toks[i], true\n", "return inside"},
		{"break in the loop",
			"\t\t\tfound = i\n",
			"\t\t\tfound = i\n\t\t\tbreak\n", "break inside"},
		{"bytes.Equal on hashes",
			"subtle.ConstantTimeCompare(toks[i].hash[:], h[:]) == 1",
			"bytes.Equal(toks[i].hash[:], h[:])", "bytes.Equal"},
		{"presented token compared as a string",
			"\th := sha256.Sum256([]byte(presented))\n",
			"\th := sha256.Sum256([]byte(presented))\n\tif presented == \"\" {\n\t\treturn token{}, false\n\t}\n", "=="},
		{"header token compared directly",
			"t, ok := matchToken(c.tokens, strings.TrimSpace(tok))",
			"t, ok := matchToken(c.tokens, strings.TrimSpace(tok)); _ = strings.Compare(tok, \"x\")", "strings.Compare"},
		{"token field compared at load",
			"if len(fields[2]) < minTokenLen {",
			"if fields[2] != \"\" && len(fields[2]) < minTokenLen {", "!="},
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			if !strings.Contains(string(src), m.from) {
				t.Fatalf("api.go no longer holds %q: update the mutant", m.from)
			}
			bad := strings.Replace(string(src), m.from, m.to, 1)
			problems := strings.Join(timingProblems(t, bad), "\n")
			if !strings.Contains(problems, m.want) {
				t.Errorf("the check missed it (want a problem saying %q), got:\n%s", m.want, problems)
			}
		})
	}
}

// timingProblems lists the rule breaks in src (the text of api.go).
func timingProblems(t *testing.T, src string) []string {
	t.Helper()
	fset := gotoken.NewFileSet()
	f, err := parser.ParseFile(fset, "api.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	report := func(n ast.Node, format string) {
		problems = append(problems, fset.Position(n.Pos()).String()+": "+format)
	}

	imported := false
	for _, im := range f.Imports {
		if im.Path.Value == `"crypto/subtle"` && im.Name == nil {
			imported = true
		}
	}
	if !imported {
		problems = append(problems, `api.go does not import "crypto/subtle"`)
	}

	// Secret names, per function: what holds a token or its hash. The
	// results of sha256.Sum256, the presented token (matchToken's
	// presented, authenticate's tok, tokenInQuery's v); in every function
	// the hash field and the token field read from a file (fields[2]).
	unsafeCalls := [][2]string{{"bytes", "Equal"}, {"bytes", "Compare"}, {"strings", "Compare"}, {"strings", "EqualFold"}, {"strings", "HasPrefix"}, {"slices", "Equal"}, {"reflect", "DeepEqual"}}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		secret := map[string]bool{}
		switch fn.Name.Name {
		case "matchToken":
			secret["presented"] = true
		case "authenticate":
			secret["tok"] = true
		case "tokenInQuery":
			secret["v"] = true
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok {
				return true
			}
			for i, rhs := range as.Rhs {
				if isCall(rhs, "sha256", "Sum256") && i < len(as.Lhs) {
					if id, ok := as.Lhs[i].(*ast.Ident); ok {
						secret[id.Name] = true
					}
				}
			}
			return true
		})
		mentions := func(e ast.Expr) bool {
			found := false
			ast.Inspect(e, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.SelectorExpr:
					if x.Sel.Name == "hash" {
						found = true
					}
				case *ast.Ident:
					if secret[x.Name] {
						found = true
					}
				case *ast.IndexExpr:
					if id, ok := x.X.(*ast.Ident); ok && id.Name == "fields" {
						if lit, ok := x.Index.(*ast.BasicLit); ok && lit.Value == "2" {
							found = true
						}
					}
				case *ast.CallExpr:
					// len(secret) is not the secret; matchToken and
					// ConstantTimeCompare are the sanctioned ways.
					if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "matchToken") {
						return false
					}
					if isCall(x, "subtle", "ConstantTimeCompare") {
						return false
					}
				}
				return !found
			})
			return found
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if (x.Op == gotoken.EQL || x.Op == gotoken.NEQ) && (mentions(x.X) || mentions(x.Y)) {
					report(x, x.Op.String()+" on a token or its hash")
				}
			case *ast.CallExpr:
				for _, uc := range unsafeCalls {
					if isCall(x, uc[0], uc[1]) {
						for _, a := range x.Args {
							if mentions(a) {
								report(x, uc[0]+"."+uc[1]+" on a token or its hash")
								break
							}
						}
					}
				}
			case *ast.SwitchStmt:
				if x.Tag != nil && mentions(x.Tag) {
					report(x, "switch on a token or its hash")
				}
			}
			return true
		})
	}

	// matchToken: ConstantTimeCompare in a loop that always runs to the end.
	var match *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "matchToken" {
			match = fd
		}
	}
	if match == nil {
		return append(problems, "no func matchToken")
	}
	loops := 0
	ast.Inspect(match.Body, func(n ast.Node) bool {
		var body *ast.BlockStmt
		switch l := n.(type) {
		case *ast.RangeStmt:
			body = l.Body
		case *ast.ForStmt:
			body = l.Body
		default:
			return true
		}
		loops++
		compares := false
		ast.Inspect(body, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.ReturnStmt:
				report(x, "return inside matchToken's loop: the time taken tells which token matched")
			case *ast.BranchStmt:
				if x.Tok == gotoken.BREAK || x.Tok == gotoken.GOTO {
					report(x, x.Tok.String()+" inside matchToken's loop: the time taken tells which token matched")
				}
			case *ast.CallExpr:
				if isCall(x, "subtle", "ConstantTimeCompare") {
					compares = true
				}
			case *ast.FuncLit:
				return false
			}
			return true
		})
		if !compares {
			report(n, "matchToken's loop does not compare with subtle.ConstantTimeCompare")
		}
		return false
	})
	if loops == 0 {
		report(match, "matchToken has no loop over the tokens")
	}
	return problems
}

// isCall reports whether e is a call of pkg.name.
func isCall(e ast.Expr, pkg, name string) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == name
}
