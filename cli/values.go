package cli

import "strings"

// StringList is a repeatable string flag: each use appends; the environment
// form is a comma-separated list.
type StringList []string

// String implements flag.Value.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *StringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// Multi marks the flag as repeatable, so its environment value is split on commas.
func (l *StringList) Multi() {}
