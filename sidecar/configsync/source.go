package configsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/podkit/podkit/container"
)

// snapshot is what a source holds at one moment.
type snapshot struct {
	dir   bool   // the source is a directory: files are its top-level files
	files []file // sorted by name
}

// file is one file of a snapshot or of the rendered output; name is a base
// name (no separator).
type file struct {
	name string
	data []byte
}

// source fetches the current snapshot.
type source interface {
	fetch(ctx context.Context) (snapshot, error)
	// watchPaths are the directories whose changes may change the
	// snapshot (none for an HTTP source).
	watchPaths() []string
}

// pathSource reads a file or a directory.
type pathSource struct {
	path string
	max  int64
}

// dataLink is the symlink a Kubernetes ConfigMap, Secret or projected
// volume swaps atomically to publish a new version of its files.
const dataLink = "..data"

func (p *pathSource) fetch(ctx context.Context) (snapshot, error) {
	fi, err := os.Stat(p.path)
	if err != nil {
		return snapshot{}, err
	}
	if !fi.IsDir() {
		b, err := readLimited(p.path, p.max)
		if err != nil {
			return snapshot{}, err
		}
		return snapshot{files: []file{{name: filepath.Base(p.path), data: b}}}, nil
	}
	// A kubelet-managed volume: read the version ..data points at, and make
	// sure it did not move while we read, so the snapshot is consistent.
	var lastErr error
	for range 5 {
		target, err := os.Readlink(filepath.Join(p.path, dataLink))
		if err != nil {
			return p.readDir(p.path)
		}
		dir := target
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(p.path, target)
		}
		s, err := p.readDir(dir)
		again, _ := os.Readlink(filepath.Join(p.path, dataLink))
		if err == nil && again == target {
			return s, nil
		}
		lastErr = err
		if err := ctx.Err(); err != nil {
			return snapshot{}, err
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%s kept changing while it was read", filepath.Join(p.path, dataLink))
	}
	return snapshot{}, lastErr
}

// readDir reads the regular files (following symlinks) at the top of dir,
// skipping names that begin with a dot (kubelet's ..data and timestamped
// directories, editors' temporary files).
func (p *pathSource) readDir(dir string) (snapshot, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{dir: true}
	var total int64
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		full := filepath.Join(dir, e.Name())
		fi, err := os.Stat(full)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a dangling symlink, or removed since the listing
			}
			return snapshot{}, err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := readLimited(full, p.max-total)
		if err != nil {
			return snapshot{}, err
		}
		total += int64(len(b))
		s.files = append(s.files, file{name: e.Name(), data: b})
	}
	sort.Slice(s.files, func(i, j int) bool { return s.files[i].name < s.files[j].name })
	return s, nil
}

func (p *pathSource) watchPaths() []string {
	out := []string{}
	add := func(d string) {
		for _, have := range out {
			if have == d {
				return
			}
		}
		out = append(out, d)
	}
	if fi, err := os.Stat(p.path); err == nil && fi.IsDir() {
		add(p.path)
	} else {
		add(filepath.Dir(p.path))
	}
	if real, err := filepath.EvalSymlinks(p.path); err == nil {
		if fi, err := os.Stat(real); err == nil && fi.IsDir() {
			add(real)
		} else {
			add(filepath.Dir(real))
		}
	}
	return out
}

// readLimited reads a file of at most max bytes.
func readLimited(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: the source is larger than --max-bytes", name)
	}
	return b, nil
}

// httpSource polls a URL with conditional requests.
type httpSource struct {
	url       string
	client    *http.Client
	timeout   time.Duration
	headers   []string
	tokenFile string
	max       int64

	etag, lastModified string
	body               []byte
	have               bool
	notModified        int // 304 answers, for logs and tests
}

func (h *httpSource) fetch(ctx context.Context) (snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return snapshot{}, err
	}
	for _, line := range h.headers {
		name, value, _ := parseHeader(line) // validated
		req.Header.Add(name, value)
	}
	if h.tokenFile != "" {
		b, err := os.ReadFile(h.tokenFile)
		if err != nil {
			return snapshot{}, fmt.Errorf("--bearer-token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	if h.have {
		if h.etag != "" {
			req.Header.Set("If-None-Match", h.etag)
		}
		if h.lastModified != "" {
			req.Header.Set("If-Modified-Since", h.lastModified)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return snapshot{}, fmt.Errorf("GET %s: %w", container.RedactURL(h.url), unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && h.have:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		h.notModified++
		return h.snapshot(), nil
	case resp.StatusCode != http.StatusOK:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		msg := strings.TrimSpace(string(snippet))
		if msg != "" {
			msg = ": " + oneLine(msg)
		}
		return snapshot{}, fmt.Errorf("GET %s: %s%s", container.RedactURL(h.url), resp.Status, msg)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, h.max+1))
	if err != nil {
		return snapshot{}, fmt.Errorf("GET %s: reading the body: %w", container.RedactURL(h.url), err)
	}
	if int64(len(b)) > h.max {
		return snapshot{}, fmt.Errorf("GET %s: the body is larger than --max-bytes (%d)", container.RedactURL(h.url), h.max)
	}
	h.body, h.have = b, true
	h.etag = resp.Header.Get("ETag")
	h.lastModified = resp.Header.Get("Last-Modified")
	return h.snapshot(), nil
}

func (h *httpSource) snapshot() snapshot {
	name := "data"
	if u, err := parseURLPath(h.url); err == nil && u != "" && u != "/" && u != "." {
		name = path.Base(u)
	}
	return snapshot{files: []file{{name: name, data: h.body}}}
}

func (h *httpSource) watchPaths() []string { return nil }

// parseHeader splits "Name: value" and checks the name is a valid field
// name and the value has no line breaks.
func parseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("%q is not \"Name: value\"", s)
	}
	name = strings.TrimSpace(name)
	if name == "" || !validMethod(name) {
		return "", "", fmt.Errorf("%q: %q is not a valid header name", s, name)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", fmt.Errorf("header %s: the value contains a line break or NUL", name)
	}
	return textproto.CanonicalMIMEHeaderKey(name), value, nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", " ")
}

// parseURLPath returns the path of a URL.
func parseURLPath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Path, nil
}

// unwrapURLError drops *url.Error's "Get URL:" prefix (the caller names the
// URL, redacted).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
