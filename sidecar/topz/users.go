package topz

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// userTTL is how long a parsed passwd file is trusted before it is read
// again.
const userTTL = 30 * time.Second

// userResolver names uids. A process's user is looked up first in the
// /etc/passwd of the process's own root filesystem (read through
// /proc/PID/root, one read per mount namespace), so that uid 101 reads
// "nginx" for the nginx container even though topz's own image has no such
// user; then in --passwd (topz's own /etc/passwd by default); else the
// number is shown.
type userResolver struct {
	root   string
	passwd string

	base     map[int]string
	baseRead time.Time
	selfNS   string
	byNS     map[string]nsUsers
	seen     map[string]bool
}

type nsUsers struct {
	users map[int]string // nil: unreadable
	read  time.Time
}

func newUserResolver(root, passwd string) *userResolver {
	return &userResolver{root: root, passwd: passwd, byNS: map[string]nsUsers{}}
}

// beginScan refreshes what is stale and forgets mount namespaces no longer
// seen.
func (u *userResolver) beginScan() {
	now := time.Now()
	if u.base == nil || now.Sub(u.baseRead) > userTTL {
		u.base = map[int]string{}
		if u.passwd != "" {
			if b, err := readFile(u.passwd); err == nil {
				u.base = parsePasswd(b)
			}
		}
		u.baseRead = now
	}
	u.selfNS, _ = os.Readlink(filepath.Join(u.root, "self", "ns", "mnt"))
	for ns := range u.byNS {
		if !u.seen[ns] {
			delete(u.byNS, ns)
		}
	}
	u.seen = map[string]bool{}
}

func (u *userResolver) name(pid, uid int) string {
	if m := u.nsUsers(pid); m != nil {
		if n, ok := m[uid]; ok {
			return n
		}
	}
	if n, ok := u.base[uid]; ok {
		return n
	}
	return strconv.Itoa(uid)
}

// nsUsers returns the users of the process's mount namespace (nil when it
// is topz's own, or cannot be read).
func (u *userResolver) nsUsers(pid int) map[int]string {
	dir := filepath.Join(u.root, strconv.Itoa(pid))
	ns, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
	if err != nil || ns == u.selfNS {
		return nil
	}
	u.seen[ns] = true
	if e, ok := u.byNS[ns]; ok && time.Since(e.read) < userTTL {
		return e.users
	}
	var users map[int]string
	if b, err := readRootedPasswd(filepath.Join(dir, "root")); err == nil {
		users = parsePasswd(b)
	}
	u.byNS[ns] = nsUsers{users: users, read: time.Now()}
	return users
}

// readRootedPasswd reads etc/passwd under another process's root. A
// symbolic link there would resolve against topz's own root, not the
// container's, so neither etc nor passwd may be one; a FIFO or device is
// refused too.
func readRootedPasswd(root string) ([]byte, error) {
	etc := filepath.Join(root, "etc")
	fi, err := os.Lstat(etc)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("etc is not a directory")
	}
	f, err := os.OpenFile(filepath.Join(etc, "passwd"), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("passwd is not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, maxFileSize))
}
