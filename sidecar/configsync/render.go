package configsync

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
)

// TemplateData is what a --template is executed with.
type TemplateData struct {
	// Source is the --source path or URL.
	Source string
	// Data is the content of a file or HTTP source (for a directory
	// source, the content of its only file, or "" when it has several).
	Data string
	// Files maps each file of the source to its content: the directory's
	// top-level files, or the one file (by its base name; an HTTP source by
	// its URL's last path element, or "data").
	Files map[string]string
}

// funcs are the template functions beyond text/template's built-ins.
var funcs = template.FuncMap{
	// env returns an environment variable of the config-sync process.
	"env": os.Getenv,
	// default returns def when v is empty.
	"default": func(def, v any) any {
		if v == nil || v == "" {
			return def
		}
		return v
	},
	// required fails the render when v is empty.
	"required": func(what string, v any) (any, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("required value missing: %s", what)
		}
		return v, nil
	},
	// fromJSON parses JSON text into maps, slices and values.
	"fromJSON": func(s string) (any, error) {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("fromJSON: %w", err)
		}
		return v, nil
	},
	// toJSON renders v as compact JSON.
	"toJSON": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"trim":      strings.TrimSpace,
	"upper":     strings.ToUpper,
	"lower":     strings.ToLower,
	"replace":   func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"contains":  func(sub, s string) bool { return strings.Contains(s, sub) },
	"hasPrefix": func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
	"hasSuffix": func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
	"split":     func(sep, s string) []string { return strings.Split(s, sep) },
	"join":      func(sep string, s []string) string { return strings.Join(s, sep) },
	// lines splits s into its non-empty lines, trimmed.
	"lines": func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	},
	// indent prefixes every line of s with n spaces.
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	},
	"quote":     func(s string) string { return fmt.Sprintf("%q", s) },
	"b64enc":    func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"b64dec":    func(s string) (string, error) { b, err := base64.StdEncoding.DecodeString(s); return string(b), err },
	"fileNames": fileNames,
}

func fileNames(files map[string]string) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// loadTemplate reads and parses a template file. Missing map keys are
// errors, so a typo does not render an empty value.
func loadTemplate(name string) (*template.Template, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(filepath.Base(name)).Funcs(funcs).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, err
	}
	return t, nil
}

// render executes t with the snapshot's data.
func render(t *template.Template, source string, s snapshot) ([]byte, error) {
	d := TemplateData{Source: source, Files: make(map[string]string, len(s.files))}
	for _, f := range s.files {
		d.Files[f.name] = string(f.data)
	}
	if len(s.files) == 1 {
		d.Data = string(s.files[0].data)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		var ee template.ExecError
		if errors.As(err, &ee) {
			return nil, ee
		}
		return nil, err
	}
	return buf.Bytes(), nil
}
