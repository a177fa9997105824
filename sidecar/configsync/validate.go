package configsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/podkit/podkit/internal/child"
)

// StagedFileEnv is the environment variable that holds the staged file's
// path while --validate-cmd runs.
const StagedFileEnv = "PODKIT_STAGED_FILE"

// splitWords splits a command line into words the way a POSIX shell does
// for quoting: single quotes keep everything literally, double quotes keep
// everything but \" \\ \$ \` and backslash-newline, and an unquoted
// backslash escapes the next character. Nothing is expanded: no variables,
// globs or operators. An unterminated quote or a trailing backslash is an
// error.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("ends with a backslash")
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				in = true
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote at byte %d", i+1)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			start := i
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] != '\n' {
						cur.WriteByte(s[i])
					}
					continue
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated double quote at byte %d", start+1)
			}
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// validateError is a rejected validation: the command's status and the
// tail of its output.
type validateError struct {
	cmd    string
	status string
	tail   string
	// verdict: the command ran to its end and exited non-zero, a judgement
	// of the content (not a timeout, a kill or a failure to start it).
	verdict bool
}

func (e *validateError) Error() string {
	msg := fmt.Sprintf("--validate-cmd %q %s", e.cmd, e.status)
	if e.tail != "" {
		msg += ": " + oneLine(e.tail)
	}
	return msg
}

// runValidate runs the --validate-cmd against staged. It returns a
// *validateError when the command rejects the content (or cannot run).
func runValidate(ctx context.Context, cmdline, staged string, timeout time.Duration) error {
	words, err := splitWords(cmdline) // validated
	if err != nil || len(words) == 0 {
		return &validateError{cmd: cmdline, status: "cannot be parsed"}
	}
	for i := range words {
		words[i] = strings.ReplaceAll(words[i], "{}", staged)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.Env = append(os.Environ(), StagedFileEnv+"="+staged)
	out := child.NewTail(4 << 10)
	cmd.Stdout, cmd.Stderr = out, out
	// In a group of its own, so the context's end kills a shell script's
	// children too.
	child.Prepare(cmd, child.Options{Group: true})
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if err == nil {
		return nil
	}
	var status string
	verdict := false
	var ee *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		status = "was stopped: config-sync is stopping"
	case ctx.Err() != nil:
		status = fmt.Sprintf("did not finish within --validate-timeout (%s)", timeout)
	case errors.As(err, &ee):
		if sig, ok := child.Signaled(ee.ProcessState); ok {
			status = "was killed by signal " + sig.String()
		} else {
			status = fmt.Sprintf("exited with status %d", ee.ExitCode())
			verdict = true
		}
	default:
		status = "could not run: " + err.Error()
	}
	return &validateError{cmd: cmdline, status: status, tail: lastLines(out.String(), 10), verdict: verdict}
}

// lastLines returns the last n non-empty lines of s, joined by newlines.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimRight(l, "\r "); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
