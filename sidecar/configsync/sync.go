package configsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/retry"
)

// Result is the outcome of one pipeline run.
type Result struct {
	// SHA256 is the hash of the content the source produced this time.
	SHA256 string
	// Changed: new content was published (and, after a failed reload,
	// rolled back: see RolledBack).
	Changed bool
	// InPlace: the destination is a bind-mounted file and was rewritten in
	// place because rename failed with EBUSY.
	InPlace bool
	// Reloaded: the application was told to reload, and accepted.
	Reloaded bool
	// RolledBack: the reload failed, the previous content was restored and
	// the application told to reload again.
	RolledBack bool
	// Skipped: the source still holds a version that was rejected (by
	// validation, or by the application's reload); it is not tried again
	// until the source holds a different version (or RetryRejected is
	// called: SIGHUP).
	Skipped bool
}

// rejection remembers a version that was refused, so that polling an
// unchanged source does not publish and roll it back over and over.
type rejection struct {
	sha string
	err error
}

// reject records that the version sha was refused with err. A rejected
// version stays rejected until the source produces another one: a
// validator's verdict and an application's refusal do not change by
// themselves, and trying again would make the application reload its old
// configuration every time.
func (s *Syncer) reject(sha string, err error) {
	s.rejected = &rejection{sha: sha, err: err}
}

// RetryRejected makes the next sync try the source's version even if it
// was rejected: the operator's way (SIGHUP) to say that what refused it
// has changed.
func (s *Syncer) RetryRejected() { s.retryRejected.Store(true) }

// Sync runs the pipeline once: fetch, render, validate, publish and (unless
// Config.Once) reload, rolling back when the reload fails. An error wraps
// one of ErrFetch, ErrRender, ErrValidate, ErrPublish or ErrReload; in
// every case but ErrReload-with-failed-restore, the destination holds
// exactly what it held before, or the new content.
func (s *Syncer) Sync(ctx context.Context) (Result, error) {
	return s.sync(ctx, !s.cfg.Once)
}

func (s *Syncer) sync(ctx context.Context, reload bool) (res Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	result := resultFailed
	defer func() {
		s.m.duration.Observe(time.Since(start).Seconds())
		s.m.syncs.WithLabelValues(result).Inc()
		health := err
		if res.Skipped {
			health = s.rejected.err // still the state of things, for /healthz
		}
		s.lastErr.Store(&errHolder{health})
	}()
	fail := func(reason string, sentinel error, err error) error {
		s.m.failures.WithLabelValues(reason).Inc()
		return fmt.Errorf("%w: %w", sentinel, err)
	}

	snap, err := s.src.fetch(ctx)
	if err != nil {
		err = fail(reasonFetch, ErrFetch, err)
		s.log.Error("cannot fetch the source; the destination is unchanged", "source", s.sourceName(), "error", err)
		return res, err
	}
	out, err := s.render(snap)
	if err != nil {
		err = fail(reasonRender, ErrRender, err)
		s.log.Error("cannot render the template; the destination is unchanged", "template", s.cfg.Template, "error", err)
		return res, err
	}
	res.SHA256 = out.sha256Hex()
	if s.retryRejected.Swap(false) && s.rejected != nil {
		s.log.Info("trying the rejected version again (SIGHUP)", "sha256", s.rejected.sha)
		s.rejected = nil
	}
	if r := s.rejected; r != nil && r.sha == res.SHA256 {
		result = resultSkipped
		res.Skipped = true
		s.log.Debug("the source still holds the rejected version; not trying it again until the source changes", "sha256", res.SHA256)
		return res, nil
	}
	if out.dir && s.lastNames == nil {
		s.lastNames = readManifest(s.cfg.Dest) // what an earlier run published
	}
	cur, err := readCurrent(s.cfg.Dest, s.sourceName(), out, s.lastNames)
	if err != nil {
		err = fail(reasonPublish, ErrPublish, err)
		s.log.Error("cannot read the destination", "dest", s.cfg.Dest, "error", err)
		return res, err
	}
	if cur.matches(out) {
		result = resultUnchanged
		s.rejected = nil
		s.setNames(out)
		s.m.setContent(res.SHA256)
		s.m.lastSync.Set(unix(time.Now()))
		s.log.Debug("unchanged", "sha256", res.SHA256)
		return res, nil
	}

	st, err := stage(s.cfg.Dest, out, s.cfg.FileMode)
	if err != nil {
		err = fail(reasonPublish, ErrPublish, err)
		s.log.Error("cannot stage the new content; the destination is unchanged", "dest", s.cfg.Dest, "error", err)
		return res, err
	}
	if s.cfg.ValidateCmd != "" {
		if verr := runValidate(ctx, s.cfg.ValidateCmd, st.path, s.cfg.ValidateTimeout); verr != nil {
			st.discard()
			err = fail(reasonValidate, ErrValidate, verr)
			attrs := []any{"sha256", res.SHA256, "error", verr.Error()}
			var ve *validateError
			if errors.As(verr, &ve) {
				attrs = []any{"sha256", res.SHA256, "validate_cmd", ve.cmd, "status", ve.status, "output_tail", ve.tail}
			}
			if ve == nil || !ve.verdict {
				// Timed out, killed or not started: no verdict on the
				// content, so it is tried again (with the failure backoff).
				s.log.Error("validation did not finish; the previous file stays, and the new content is tried again", attrs...)
				return res, err
			}
			s.reject(res.SHA256, err)
			s.log.Error("validation rejected the new content; the previous file stays, and this version is not tried again until the source changes", attrs...)
			return res, err
		}
	}
	var prune []string
	if out.dir {
		for _, n := range s.lastNames {
			if !slices.Contains(names(out), n) {
				prune = append(prune, n)
			}
		}
	}
	inPlace, err := st.publish(prune)
	res.InPlace = inPlace
	if inPlace {
		s.m.inPlace.Inc()
		s.log.Warn("cannot rename over the destination (EBUSY: a bind-mounted file, or its directory is not writable); rewrote it in place, so readers may briefly see a partial file", "dest", s.cfg.Dest)
	}
	if err != nil {
		err = fail(reasonPublish, ErrPublish, err)
		if rerr := restore(s.cfg.Dest, out.dir, cur, s.cfg.FileMode); rerr != nil {
			s.log.Error("publish failed, and restoring the previous content failed too", "dest", s.cfg.Dest, "error", err, "restore_error", rerr)
		} else {
			s.log.Error("publish failed; the previous content is back", "dest", s.cfg.Dest, "error", err)
		}
		return res, err
	}
	res.Changed = true
	s.setNames(out)
	now := time.Now()
	s.m.setContent(res.SHA256)
	s.m.lastChange.Set(unix(now))
	s.log.Info("published", "dest", s.cfg.Dest, "sha256", res.SHA256, "files", len(out.files), "bytes", size(out))

	if !reload || len(s.reloader) == 0 {
		result = resultPublished
		s.rejected = nil
		s.m.lastSync.Set(unix(now))
		return res, nil
	}
	reloaded, rerr := s.reload(ctx, false)
	if rerr == nil {
		result = resultPublished
		s.rejected = nil
		res.Reloaded = reloaded
		s.m.lastSync.Set(unix(time.Now()))
		return res, nil
	}

	// The application refused the new content: put the old one back and
	// have it reload that.
	err = fail(reasonReload, ErrReload, rerr)
	result = resultRolledBack
	res.RolledBack = true
	if berr := restore(s.cfg.Dest, out.dir, cur, s.cfg.FileMode); berr != nil {
		s.reject(res.SHA256, err) // the destination holds it: never report it as in step
		s.m.failures.WithLabelValues(reasonRollback).Inc()
		s.log.Error("reload failed, and restoring the previous content failed too: the destination holds the new content", "error", err, "restore_error", berr)
		return res, err
	}
	prev := output{dir: out.dir}
	for _, n := range cur.present() {
		prev.files = append(prev.files, file{name: n, data: cur.files[n]})
	}
	s.setNames(prev)
	if len(prev.files) > 0 {
		s.m.setContent(prev.sha256Hex())
	} else {
		s.m.content.set("")
	}
	if _, rerr2 := s.reload(ctx, true); rerr2 != nil {
		// The application could not be told the previous content either:
		// it is unreachable rather than refusing this version, so the
		// version is not rejected; it is tried again with the failure
		// backoff.
		s.m.failures.WithLabelValues(reasonRollback).Inc()
		s.log.Error("reload failed; the previous content is restored, but reloading it failed too (the application is unreachable?); the new content is tried again", "error", err, "second_error", rerr2)
		return res, err
	}
	s.reject(res.SHA256, err)
	s.log.Error("reload failed; the previous content is restored and reloaded, and this version is not tried again until the source changes", "sha256", res.SHA256, "error", err)
	return res, err
}

// reload runs every reloader. A reloader that found no process only warns:
// nothing runs that could be told, and an application starting later reads
// the published file. rollback says that the content being reloaded is the
// previous one, restored after a failed reload: it is logged and counted
// as such (reloads_total{result="rollback_ok"|"rollback_failed"}).
func (s *Syncer) reload(ctx context.Context, rollback bool) (reloaded bool, err error) {
	okLabel, failedLabel := reloadOK, reloadFailed
	if rollback {
		okLabel, failedLabel = reloadRollbackOK, reloadRollbackFailed
	}
	var errs []error
	ok := 0
	for _, r := range s.reloader {
		err := r.reload(ctx)
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrNoProcess):
			s.m.failures.WithLabelValues(reasonNoProcess).Inc()
			s.log.Warn("nothing to reload", "reload", r.String(), "error", err)
		default:
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.m.reloads.WithLabelValues(failedLabel).Inc()
		return false, err
	}
	if ok > 0 {
		s.m.reloads.WithLabelValues(okLabel).Inc()
		if rollback {
			s.log.Warn("reloaded the previous content (rollback)", "reloads", ok)
		} else {
			s.m.lastReload.Set(unix(time.Now()))
			s.log.Info("reloaded", "reloads", ok)
		}
	}
	return ok > 0, nil
}

// render turns a snapshot into the output to publish.
func (s *Syncer) render(snap snapshot) (output, error) {
	if s.cfg.Template == "" {
		if snap.dir {
			return output{dir: true, files: snap.files}, nil
		}
		return output{files: []file{{name: filepath.Base(s.cfg.Dest), data: snap.files[0].data}}}, nil
	}
	// Read the template again: it may have changed (it is watched too).
	t, err := loadTemplate(s.cfg.Template)
	if err != nil {
		return output{}, err
	}
	b, err := render(t, s.cfg.Source, snap)
	if err != nil {
		return output{}, err
	}
	return output{files: []file{{name: filepath.Base(s.cfg.Dest), data: b}}}, nil
}

func (s *Syncer) sourceName() string {
	if isURL(s.cfg.Source) {
		return container.RedactURL(s.cfg.Source)
	}
	return s.cfg.Source
}

// watchPaths are the directories whose changes trigger a sync.
func (s *Syncer) watchPaths() []string {
	paths := s.src.watchPaths()
	if s.cfg.Template != "" {
		for _, p := range (&pathSource{path: s.cfg.Template}).watchPaths() {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	return paths
}

func (c current) present() []string {
	var out []string
	for _, n := range c.names {
		if _, ok := c.files[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// manifestName is the file in a directory destination that lists the
// files config-sync published there, so that a restarted config-sync still
// removes the ones that left the source (and never touches others).
const manifestName = ".podkit-config-sync"

// setNames records the names of a directory output, in memory and in the
// manifest.
func (s *Syncer) setNames(o output) {
	n := names(o)
	if !o.dir {
		s.lastNames = n
		return
	}
	if slices.Equal(n, s.lastNames) && s.manifestOK {
		return
	}
	s.lastNames = n
	data := strings.Join(n, "\n")
	if len(n) > 0 {
		data += "\n"
	}
	st, err := stage(filepath.Join(s.cfg.Dest, manifestName), output{files: []file{{name: manifestName, data: []byte(data)}}}, 0o644)
	if err == nil {
		_, err = st.publish(nil)
	}
	s.manifestOK = err == nil
	if err != nil {
		s.log.Warn("cannot record the published files; after a restart, files removed from the source may stay", "dest", s.cfg.Dest, "error", err)
	}
}

// readManifest returns the names a directory destination's manifest
// lists (nil when there is none). Names that are not plain file names are
// ignored, so a damaged manifest cannot make config-sync remove anything
// outside the directory.
func readManifest(dest string) []string {
	b, err := os.ReadFile(filepath.Join(dest, manifestName))
	if err != nil {
		return nil
	}
	out := []string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && l == filepath.Base(l) && !strings.HasPrefix(l, ".") {
			out = append(out, l)
		}
	}
	return out
}

func names(o output) []string {
	out := make([]string, len(o.files))
	for i, f := range o.files {
		out[i] = f.name
	}
	return out
}

func size(o output) int {
	n := 0
	for _, f := range o.files {
		n += len(f.data)
	}
	return n
}

type errHolder struct{ err error }

// Run implements container.Component: a first sync at once, then one after
// every change of the source (debounced) and every --poll-interval.
// Readiness turns 200 after the first sync that leaves the destination in
// step, and stays so: a later failure keeps the previous, working file.
func (s *Syncer) Run(ctx context.Context, h *container.Host) error {
	s.log = h.Logger()
	h.Registerer().MustRegister(s.m.collectors()...)
	if s.cfg.Once {
		res, err := s.sync(ctx, false)
		if err != nil {
			return &container.ExitError{Code: 1, Msg: err.Error()}
		}
		s.log.Info("in step; exiting (--once)", "sha256", res.SHA256, "changed", res.Changed)
		return nil
	}
	// The container's watcher: SIGHUP syncs at once, as daemons reload on
	// it (and a HUP sent to every process of the pod does not stop
	// config-sync); a change in the source's directories (inotify on
	// Linux) syncs after --debounce of quiet; --poll-interval syncs in any
	// case (an HTTP source's period; for files a safety net, and the
	// only watch where inotify is not available).
	wc := container.WatchConfig{Interval: s.cfg.PollInterval, Debounce: s.cfg.Debounce}
	if len(s.watchPaths()) > 0 {
		wc.Dirs = s.watchPaths
	}
	return s.loop(ctx, h, h.Watch(ctx, wc))
}

func (s *Syncer) loop(ctx context.Context, h *container.Host, w *container.Watcher) error {
	syncCtx := h.DrainContext() // a sync in flight at stop finishes, within the drain deadline
	again := newStoppedTimer()
	defer again.Stop()
	backoff := failureBackoff(s.cfg.PollInterval)
	var (
		ready    bool
		failures int
		pending  bool // a sync is due but we are paused
	)
	run := func() {
		if h.Paused() {
			pending = true
			return
		}
		pending = false
		res, err := s.sync(syncCtx, true)
		w.Rewatch() // a directory that did not exist may exist now
		if err == nil && res.Skipped {
			return // a rejected version: neither in step nor a new failure
		}
		if err != nil {
			failures++
			again.Reset(backoff.Delay(failures))
			return
		}
		failures = 0
		again.Stop()
		if !ready {
			ready = true
			h.SetReady(true)
		}
	}
	run()
	// The last sync's outcome, on /healthz (not on /readyz: a failure keeps
	// the previous, working file).
	h.AddCheck(container.Check{Name: "sync", Period: 2 * time.Second, Func: func(context.Context) error {
		if e := s.lastErr.Load(); e != nil {
			return e.err
		}
		return nil
	}})
	for {
		pauseCh := h.PauseChanged()
		select {
		case <-ctx.Done():
			return nil
		case t := <-w.C():
			if t.Signal {
				s.log.Info("SIGHUP: syncing now, a rejected version included")
				s.RetryRejected()
			}
			run()
		case <-again.C:
			run()
		case <-pauseCh:
			if !h.Paused() && pending {
				run()
			}
		}
	}
}

// failureBackoff is the schedule of the syncs retried after a failure:
// 500ms, doubling, at most poll (the poll comes anyway) and at most
// 500ms·2^10.
func failureBackoff(poll time.Duration) retry.Policy {
	const first = 500 * time.Millisecond
	return retry.Policy{Initial: min(first, poll), Max: min(poll, first<<10)}
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
