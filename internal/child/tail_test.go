package child_test

import (
	"strings"
	"testing"

	"github.com/podkit/podkit/internal/child"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
		suffix string
	}{
		{"empty", 8, nil, "", ""},
		{"fits", 8, []string{"abc", "de\n"}, "abcde\n", ": abcde"},
		{"exactly full", 4, []string{"abcd"}, "abcd", ": abcd"},
		{"cut across writes", 4, []string{"abc", "def"}, "cdef", ": …cdef"},
		{"one long write", 4, []string{"abcdefgh"}, "efgh", ": …efgh"},
		{"full write after another", 4, []string{"x", "abcd"}, "abcd", ": …abcd"},
		{"newlines only", 8, []string{"\n\n"}, "\n\n", ""},
		{"keeps nothing", 0, []string{"abc"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := child.NewTail(tt.max)
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tl.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got := tl.Suffix(); got != tt.suffix {
				t.Errorf("Suffix = %q, want %q", got, tt.suffix)
			}
		})
	}
	big := child.NewTail(1 << 10)
	for range 1000 {
		big.Write([]byte(strings.Repeat("x", 100)))
	}
	if len(big.String()) != 1<<10 || !big.Truncated() {
		t.Fatalf("kept %d bytes, truncated %v", len(big.String()), big.Truncated())
	}
}
