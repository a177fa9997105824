package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name, content, want string
		empty               bool
	}{
		{name: "no newline", content: "s3cret", want: "s3cret"},
		{name: "newline", content: "s3cret\n", want: "s3cret"},
		{name: "CRLF", content: "s3cret\r\n", want: "s3cret"},
		{name: "several line endings", content: "s3cret\n\r\n\n", want: "s3cret"},
		{name: "inner spaces and newlines kept", content: " two words\nand a line \n", want: " two words\nand a line "},
		{name: "empty", content: "", empty: true},
		{name: "only a newline", content: "\n", empty: true},
		{name: "only CRLF", content: "\r\n", empty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Read(path)
			if tt.empty {
				if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Read = %q, %v; want an error naming %s wrapping ErrEmpty", got, err, path)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestReadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	if _, err := Read(path); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Read(missing) = %v", err)
	}
}
