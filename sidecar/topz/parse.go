package topz

import (
	"bytes"
	"strconv"

	"github.com/podkit/podkit/internal/procfs"
)

// The files under /proc are parsed by internal/procfs; this file parses
// what is topz's own: /etc/passwd, which in another container that
// container controls. The parsers never panic and report malformed input
// with an error naming the field.

// ErrMalformed is wrapped by every parse error (it is procfs.ErrMalformed,
// so one errors.Is covers the /proc files and the cgroup file).
var ErrMalformed = procfs.ErrMalformed

// parsePasswd maps uid to user name from an /etc/passwd file. Malformed
// lines are skipped: the file belongs to another container and a bad line
// must not hide the good ones.
func parsePasswd(b []byte) map[int]string {
	users := map[int]string{}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := bytes.SplitN(line, []byte{':'}, 4)
		if len(f) < 4 || len(f[0]) == 0 || len(f[0]) > 64 {
			continue
		}
		uid, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := users[int(uid)]; !dup {
			users[int(uid)] = string(f[0])
		}
	}
	return users
}

// clip shortens b for an error message.
func clip(b []byte) string {
	const max = 40
	b = bytes.TrimSpace(b)
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
