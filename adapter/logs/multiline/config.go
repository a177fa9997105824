package multiline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is one rule as written in a rules file or on the command line.
type Config struct {
	Name string `yaml:"name"`
	// Paths limit the rule to sources whose path matches one of these
	// filepath.Match patterns; empty means every source.
	Paths []string `yaml:"paths"`
	// Detector names a built-in detector (java, python, go, node, auto);
	// it excludes Mode, StartPattern and ConditionPattern.
	Detector         string `yaml:"detector"`
	Mode             string `yaml:"mode"`
	StartPattern     string `yaml:"start_pattern"`
	ConditionPattern string `yaml:"condition_pattern"`
	Timeout          string `yaml:"timeout"`
	MaxLines         int    `yaml:"max_lines"`
	MaxBytes         int    `yaml:"max_bytes"`
}

// File is a rules file:
//
//	rules:
//	  - name: app
//	    paths: ["/var/log/app/*.log"]
//	    detector: java
//	  - name: continued
//	    mode: continue_past
//	    start_pattern: '\\$'
//	    condition_pattern: '\\$'
//	    timeout: 2s
//	    max_lines: 200
//	    max_bytes: 65536
type File struct {
	Rules []Config `yaml:"rules"`
}

// PathRule is a compiled rule and the sources it applies to.
type PathRule struct {
	Paths []string
	Rule  *Rule
}

// Applies reports whether the rule applies to the source path.
func (p PathRule) Applies(path string) bool {
	if len(p.Paths) == 0 {
		return true
	}
	for _, pat := range p.Paths {
		if ok, _ := filepath.Match(pat, path); ok {
			return true
		}
	}
	return false
}

// ParseFile decodes a rules file strictly: an unknown key or a key given
// twice is an error naming its line. Every rule is compiled; errors name
// the rule.
func ParseFile(data []byte) ([]PathRule, error) {
	f, err := decodeFile(data)
	if err != nil {
		return nil, err
	}
	return compileFile(f)
}

// compileFile compiles every rule of f.
func compileFile(f File) ([]PathRule, error) {
	if len(f.Rules) == 0 {
		return nil, errors.New("no rules (want a top-level \"rules:\" list)")
	}
	var (
		out  []PathRule
		errs []error
	)
	for i, c := range f.Rules {
		r, err := c.Compile()
		if err != nil {
			label := fmt.Sprintf("rule %d", i+1)
			if c.Name != "" {
				label += fmt.Sprintf(" (%s)", c.Name)
			}
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		for _, p := range c.Paths {
			if _, err := filepath.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("rule %d: paths: %q: %v", i+1, p, err))
			}
		}
		out = append(out, PathRule{Paths: c.Paths, Rule: r})
	}
	return out, errors.Join(errs...)
}

// fileYAML and ruleYAML are File and Config as decoded: their lists hold
// pointers because yaml.v3 drops a null list item ("- ~", or "-" alone)
// when the item is a struct or a string, where rules files have always
// read it as an empty rule or an empty path pattern (which matches no
// path); a nil pointer is kept, and decodeFile makes it that zero value.
type fileYAML struct {
	Rules []*ruleYAML `yaml:"rules"`
}

type ruleYAML struct {
	Name             string    `yaml:"name"`
	Paths            []*string `yaml:"paths"`
	Detector         string    `yaml:"detector"`
	Mode             string    `yaml:"mode"`
	StartPattern     string    `yaml:"start_pattern"`
	ConditionPattern string    `yaml:"condition_pattern"`
	Timeout          string    `yaml:"timeout"`
	MaxLines         int       `yaml:"max_lines"`
	MaxBytes         int       `yaml:"max_bytes"`
}

// decodeFile decodes the first YAML document of data: an unknown key or a
// key given twice is an error naming its line, and empty input decodes to
// no rules.
func decodeFile(data []byte) (File, error) {
	var fy fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fy); err != nil && err != io.EOF {
		return File{}, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		if err := checkKeys(&root); err != nil {
			return File{}, err
		}
	}
	var f File
	for _, ry := range fy.Rules {
		if ry == nil {
			f.Rules = append(f.Rules, Config{})
			continue
		}
		c := Config{Name: ry.Name, Detector: ry.Detector, Mode: ry.Mode, StartPattern: ry.StartPattern,
			ConditionPattern: ry.ConditionPattern, Timeout: ry.Timeout, MaxLines: ry.MaxLines, MaxBytes: ry.MaxBytes}
		for _, p := range ry.Paths {
			if p == nil {
				c.Paths = append(c.Paths, "")
			} else {
				c.Paths = append(c.Paths, *p)
			}
		}
		f.Rules = append(f.Rules, c)
	}
	return f, nil
}

// checkKeys refuses a null key ("~: x", or an empty key), which yaml.v3
// skips silently even when decoding strictly.
func checkKeys(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!null" {
				return fmt.Errorf("line %d: a key is empty (null)", k.Line)
			}
		}
	}
	for _, c := range n.Content {
		if err := checkKeys(c); err != nil {
			return err
		}
	}
	return nil
}

// Compile checks c and builds its Rule.
func (c Config) Compile() (*Rule, error) {
	var errs []error
	var r *Rule
	if c.Detector != "" {
		if c.Mode != "" || c.StartPattern != "" || c.ConditionPattern != "" {
			errs = append(errs, errors.New("detector excludes mode, start_pattern and condition_pattern"))
		}
		b, err := Builtin(c.Detector)
		if err != nil {
			errs = append(errs, fmt.Errorf("detector: %w", err))
			b = &Rule{Condition: Any{}}
		}
		r = b
	} else {
		r = &Rule{}
		if c.Mode == "" {
			errs = append(errs, errors.New("mode is required (continue_through, continue_past, halt_before or halt_with) unless detector is set"))
		} else if m, err := ParseMode(c.Mode); err != nil {
			errs = append(errs, fmt.Errorf("mode: %w", err))
		} else {
			r.Mode = m
		}
		if c.StartPattern != "" {
			re, err := regexp.Compile(c.StartPattern)
			if err != nil {
				errs = append(errs, fmt.Errorf("start_pattern: %w", err))
			} else {
				r.Start = Regexp{re}
			}
		}
		if c.ConditionPattern == "" {
			errs = append(errs, errors.New("condition_pattern is required"))
		} else if re, err := regexp.Compile(c.ConditionPattern); err != nil {
			errs = append(errs, fmt.Errorf("condition_pattern: %w", err))
		} else {
			r.Condition = Regexp{re}
		}
	}
	r.Name = c.Name
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("timeout: %q is not a positive duration such as 500ms or 2s", c.Timeout))
		}
		r.Timeout = d
	}
	if c.MaxLines < 0 {
		errs = append(errs, fmt.Errorf("max_lines: %d is negative", c.MaxLines))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: %d is negative", c.MaxBytes))
	}
	r.MaxLines, r.MaxBytes = c.MaxLines, c.MaxBytes
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, r.Validate()
}
