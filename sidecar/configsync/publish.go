package configsync

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// output is what the pipeline publishes: one file at Dest, or files inside
// the directory Dest.
type output struct {
	dir   bool
	files []file // sorted by name; exactly one when !dir
}

// sha256Hex is the content hash: of the one file's bytes (so it matches
// sha256sum), or of each name and content of a directory.
func (o output) sha256Hex() string {
	h := sha256.New()
	if !o.dir && len(o.files) == 1 {
		h.Write(o.files[0].data)
	} else {
		for _, f := range o.files {
			h.Write([]byte(f.name))
			h.Write([]byte{0})
			h.Write([]byte(strconv.Itoa(len(f.data))))
			h.Write([]byte{0})
			h.Write(f.data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// current is what is at the destination before a publish: for each name
// the pipeline may touch, its content, or absent.
type current struct {
	files map[string][]byte // present files
	names []string          // every name looked at
}

// destPath is where the file name of o is published.
func destPath(dest string, dir bool, name string) string {
	if !dir {
		return dest
	}
	return filepath.Join(dest, name)
}

// readCurrent reads what is published now under the names o would write
// and the names published last time.
func readCurrent(dest, source string, o output, lastNames []string) (current, error) {
	c := current{files: map[string][]byte{}}
	if err := destShape(dest, source, o.dir); err != nil {
		return c, err
	}
	seen := map[string]bool{}
	names := make([]string, 0, len(o.files)+len(lastNames))
	for _, f := range o.files {
		names = append(names, f.name)
	}
	if o.dir {
		names = append(names, lastNames...)
	}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		c.names = append(c.names, n)
		b, err := os.ReadFile(destPath(dest, o.dir, n))
		switch {
		case err == nil:
			c.files[n] = b
		case errors.Is(err, os.ErrNotExist):
		default:
			return c, err
		}
	}
	return c, nil
}

// matches reports whether the destination already holds exactly o.
func (c current) matches(o output) bool {
	want := map[string]bool{}
	for _, f := range o.files {
		want[f.name] = true
		if b, ok := c.files[f.name]; !ok || !bytes.Equal(b, f.data) {
			return false
		}
	}
	for n := range c.files {
		if !want[n] {
			return false // a file published last time that must go
		}
	}
	return true
}

// staged is an output written next to its destination, not yet published.
type staged struct {
	dest  string
	dir   bool
	files []file
	path  string            // what --validate-cmd sees: the temp file, or the staging directory
	tmp   map[string]string // name -> temp path
	// elsewhere: dest's directory is not writable (a file bind-mounted
	// into a directory config-sync may not write), so the staged file is in
	// the temporary directory and publish must rewrite dest in place.
	elsewhere bool
}

// stage writes o next to dest: a dot-named temp file in dest's directory
// (so the rename is atomic and a "*.conf" include never picks it up), or a
// dot-named staging directory inside a directory dest. Every file is
// fsynced.
func stage(dest string, o output, mode fs.FileMode) (*staged, error) {
	s := &staged{dest: dest, dir: o.dir, files: o.files, tmp: map[string]string{}}
	if !o.dir {
		dir := filepath.Dir(dest)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".podkit-*")
		if err != nil && unwritableDir(err) {
			if fi, serr := os.Stat(dest); serr == nil && fi.Mode().IsRegular() {
				f, err = os.CreateTemp("", "."+filepath.Base(dest)+".podkit-*")
				s.elsewhere = true
			}
		}
		if err != nil {
			return nil, err
		}
		s.path = f.Name()
		s.tmp[o.files[0].name] = f.Name()
		if err := writeSynced(f, o.files[0].data, mode, dest); err != nil {
			s.discard()
			return nil, err
		}
		return s, nil
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	sdir, err := os.MkdirTemp(dest, ".podkit-staged-*")
	if err != nil {
		return nil, err
	}
	s.path = sdir
	for _, fl := range o.files {
		p := filepath.Join(sdir, fl.name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			s.discard()
			return nil, err
		}
		s.tmp[fl.name] = p
		if err := writeSynced(f, fl.data, mode, filepath.Join(dest, fl.name)); err != nil {
			s.discard()
			return nil, err
		}
	}
	return s, nil
}

// writeSynced writes data to f, sets its mode (and the owner of like, when
// like exists and we may), fsyncs and closes it.
func writeSynced(f *os.File, data []byte, mode fs.FileMode, like string) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		if fi, serr := os.Stat(like); serr == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				_ = f.Chown(int(st.Uid), int(st.Gid)) // best effort: only root may give a file away
			}
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// discard removes what stage wrote.
func (s *staged) discard() {
	for _, p := range s.tmp {
		os.Remove(p)
	}
	if s.dir && s.path != "" {
		os.RemoveAll(s.path)
	}
}

// publish renames every staged file over its destination and fsyncs the
// directory. When the destination is a bind-mounted file, rename fails with
// EBUSY (or the staged file had to go to another file system because the
// destination's directory is not writable); the file is then rewritten in
// place (and inPlace is true): readers may see a partial file for that
// moment, which nothing else can avoid.
// prune names files (of a directory destination) to remove.
func (s *staged) publish(prune []string) (inPlace bool, err error) {
	defer s.discard()
	for _, f := range s.files {
		final := destPath(s.dest, s.dir, f.name)
		if s.elsewhere {
			return true, writeInPlace(final, f.data)
		}
		err := os.Rename(s.tmp[f.name], final)
		if err == nil {
			delete(s.tmp, f.name) // it is the destination now
		} else if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			err = writeInPlace(final, f.data) // the temp file goes with discard
			inPlace = true
		}
		if err != nil {
			return inPlace, err
		}
	}
	for _, n := range prune {
		if err := os.Remove(destPath(s.dest, s.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return inPlace, err
		}
	}
	dir := s.dest
	if !s.dir {
		dir = filepath.Dir(s.dest)
	}
	return inPlace, syncDir(dir)
}

// unwritableDir reports whether creating a file failed because the
// directory may not be written.
func unwritableDir(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// writeInPlace truncates and rewrites name, then fsyncs it.
func writeInPlace(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory, so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil // some file systems cannot fsync a directory
	}
	return err
}

// restore puts back what c recorded: files that existed get their old
// content (atomically), files that did not are removed.
func restore(dest string, dir bool, c current, mode fs.FileMode) error {
	var back output
	back.dir = dir
	var remove []string
	for _, n := range c.names {
		if b, ok := c.files[n]; ok {
			back.files = append(back.files, file{name: n, data: b})
		} else {
			remove = append(remove, n)
		}
	}
	if len(back.files) == 0 {
		var errs []error
		for _, n := range remove {
			if err := os.Remove(destPath(dest, dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	s, err := stage(dest, back, mode)
	if err != nil {
		return err
	}
	_, err = s.publish(remove)
	return err
}
