// Package secretfile reads a secret (a password) from a file, the only
// way podkit takes one: flags and environment variables would show it in
// the process table and in /info.
//
// The rule, the same for every component: the file's content is the
// secret, without its trailing line ending: the \n or \r\n an editor or
// `echo` leaves (every \r and \n at the end is dropped, as podkit always
// did; a secret cannot end with one). A file that is empty, or holds only
// line endings, is an error naming the file: a component that needs no
// password is given no password file.
package secretfile

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrEmpty is wrapped by the error for a file that holds no secret.
var ErrEmpty = errors.New("is empty")

// Read returns the secret in the file at path.
func Read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s %w", path, ErrEmpty)
	}
	return s, nil
}
