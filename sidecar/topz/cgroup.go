package topz

import (
	"bytes"
	"fmt"
	"strings"
)

// Container identifies the container a process belongs to, as far as its
// cgroup path tells.
type Container struct {
	// ID is the container id (64 hex digits) found in the cgroup path;
	// empty when the path names none (a host process, or a container whose
	// cgroup namespace hides its path).
	ID string `json:"id,omitempty"`
	// ShortID is the id's first 12 digits, as docker ps shows it.
	ShortID string `json:"short_id,omitempty"`
	// Runtime is the engine the path's naming points to: docker,
	// containerd, cri-o, podman, or "" when unknown.
	Runtime string `json:"runtime,omitempty"`
	// PodUID is the Kubernetes pod UID when the path is under kubepods.
	PodUID string `json:"pod_uid,omitempty"`
	// Cgroup is the cgroup path the id was taken from (the unified
	// hierarchy's path when there is no id).
	Cgroup string `json:"cgroup"`
}

// parseCgroup parses /proc/PID/cgroup, cgroup v1 ("ID:controllers:path"
// lines), v2 ("0::path") or both (hybrid). The unified line is looked at
// first, then the v1 lines in order; the first path that names a container
// wins.
func parseCgroup(b []byte) (Container, error) {
	var unified string
	var haveUnified bool
	var v1 []string
	n := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		n++
		f := bytes.SplitN(line, []byte{':'}, 3)
		if len(f) != 3 {
			return Container{}, fmt.Errorf("cgroup: %w: line %d: %q is not ID:CONTROLLERS:PATH", ErrMalformed, n, clip(line))
		}
		path := string(f[2])
		if string(f[0]) == "0" && len(f[1]) == 0 {
			unified, haveUnified = path, true
			continue
		}
		v1 = append(v1, path)
	}
	if n == 0 {
		return Container{}, fmt.Errorf("cgroup: %w: empty", ErrMalformed)
	}
	var paths []string
	if haveUnified {
		paths = append(paths, unified)
	}
	paths = append(paths, v1...)
	for _, p := range paths {
		if c, ok := containerFromPath(p); ok {
			return c, nil
		}
	}
	c := Container{Cgroup: paths[0]}
	c.PodUID = podUID(paths[0])
	return c, nil
}

// runtimePrefixes are the systemd scope prefixes engines use for a
// container's cgroup, e.g. docker-<id>.scope; the conmon scopes belong to
// the engine's monitor process, not to the container.
var runtimePrefixes = []struct{ prefix, runtime string }{
	{"crio-conmon-", ""},
	{"libpod-conmon-", ""},
	{"docker-", "docker"},
	{"cri-containerd-", "containerd"},
	{"containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"libpod-", "podman"},
}

// containerFromPath finds the innermost container id in a cgroup path:
//
//	/docker/<id>                                            (docker, cgroupfs driver)
//	/system.slice/docker-<id>.scope                         (docker, systemd driver)
//	/kubepods/burstable/pod<uid>/<id>                       (kubelet, cgroupfs driver)
//	/kubepods.slice/.../kubepods-pod<uid>.slice/cri-containerd-<id>.scope
//	/kubepods.slice/.../crio-<id>.scope                     (cri-o)
//	/machine.slice/libpod-<id>.scope                        (podman)
//	/../<id> or /../docker-<id>.scope                       (seen from another cgroup namespace)
func containerFromPath(path string) (Container, bool) {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		e := strings.TrimSuffix(elems[i], ".scope")
		runtime, conmon := "", false
		for _, p := range runtimePrefixes {
			if rest, ok := strings.CutPrefix(e, p.prefix); ok {
				e, runtime, conmon = rest, p.runtime, p.runtime == ""
				break
			}
		}
		if conmon || !isContainerID(e) {
			continue
		}
		if runtime == "" {
			runtime = runtimeFromAncestors(elems[:i])
		}
		return Container{ID: e, ShortID: e[:12], Runtime: runtime, PodUID: podUID(path), Cgroup: path}, true
	}
	return Container{}, false
}

func runtimeFromAncestors(elems []string) string {
	for i := len(elems) - 1; i >= 0; i-- {
		switch e := elems[i]; {
		case e == "docker" || e == "actions_job":
			return "docker"
		case e == "libpod_parent":
			return "podman"
		case e == "crio":
			return "cri-o"
		case strings.HasPrefix(e, "kubepods"):
			return ""
		}
	}
	return ""
}

// podUID extracts the pod UID from a kubepods cgroup path: "pod<uid>"
// (cgroupfs driver) or "kubepods-...-pod<uid_with_underscores>.slice"
// (systemd driver).
func podUID(path string) string {
	if !strings.Contains(path, "kubepods") {
		return ""
	}
	for _, e := range strings.Split(path, "/") {
		e = strings.TrimSuffix(e, ".slice")
		i := strings.LastIndex(e, "pod")
		if i < 0 || (i > 0 && e[i-1] != '-') {
			continue
		}
		uid := strings.ReplaceAll(e[i+3:], "_", "-")
		if isUUID(uid) {
			return uid
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}
