// Package kube is podkit elect's kubernetes backend: a coordination.k8s.io
// Lease, read and written through client-go like client-go's own leader
// election, with two differences that make it usable for fencing:
//
//   - the epoch is spec.leaseTransitions, incremented by every replica that
//     acquires the Lease (not only when the holder changes), under the
//     API server's compare-and-swap on resourceVersion, so every
//     acquisition has its own, strictly greater epoch;
//   - the leader claims leadership only until its last successful renewal
//     plus RenewDeadline, which is shorter than the LeaseDuration other
//     replicas wait before taking over.
//
// Replicas watch the Lease, so a release (graceful stop or resign: the
// holder is cleared) is taken over at once; a crashed leader is replaced
// LeaseDuration after its last renewal was observed.
//
// The leader's advertised address is kept in the Lease's
// elect.podkit.dev/address annotation.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/podkit/podkit/election/backend"
	"github.com/podkit/podkit/internal/kubeconfig"
	"github.com/podkit/podkit/internal/retry"
)

// AddressAnnotation holds the leader's advertised address on the Lease.
const AddressAnnotation = "elect.podkit.dev/address"

// Config configures the kubernetes backend.
type Config struct {
	// Name is the Lease's name; Namespace its namespace ("" means the
	// pod's: $POD_NAMESPACE, the service account's, the kubeconfig's, or
	// "default").
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Kubeconfig is a kubeconfig file; "" means the in-cluster config.
	Kubeconfig string `json:"kubeconfig"`
	// RestConfig, if set, is used instead of Kubeconfig.
	RestConfig *rest.Config `json:"-"`
	// LeaseDuration is how long other replicas wait after the last
	// renewal they observed before taking over (whole seconds).
	// RenewDeadline is how long the leader keeps leading without a
	// successful renewal; RetryPeriod the interval of renewals and of
	// acquisition attempts.
	LeaseDuration time.Duration `json:"lease_duration"`
	RenewDeadline time.Duration `json:"renew_deadline"`
	RetryPeriod   time.Duration `json:"retry_period"`
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("empty Lease name"))
	}
	if c.LeaseDuration < time.Second {
		errs = append(errs, fmt.Errorf("lease duration %s is below 1s", c.LeaseDuration))
	}
	if c.RenewDeadline <= 0 || c.RenewDeadline >= c.LeaseDuration {
		errs = append(errs, fmt.Errorf("renew deadline %s must be positive and below the lease duration %s", c.RenewDeadline, c.LeaseDuration))
	}
	if c.RetryPeriod <= 0 || c.RetryPeriod >= c.RenewDeadline {
		errs = append(errs, fmt.Errorf("retry period %s must be positive and below the renew deadline %s", c.RetryPeriod, c.RenewDeadline))
	}
	return errors.Join(errs...)
}

// Backend is the kubernetes backend.
type Backend struct {
	cfg    Config
	leases coordclient.LeaseInterface

	resignCh chan chan error // Resign asks the campaign loop
}

var _ backend.Backend = (*Backend)(nil)

// New validates cfg and builds the client; nothing is requested until
// Campaign.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc := cfg.RestConfig
	kubeNS := ""
	if rc == nil {
		var err error
		if rc, kubeNS, err = kubeconfig.Load(cfg.Kubeconfig); err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "podkit-elect"
	// A handover is a burst of reads and writes: client-go's default
	// limiter (5/s) would delay it by whole tenths of a second.
	rc.QPS, rc.Burst = 50, 100
	if rc.Timeout == 0 {
		rc.Timeout = cfg.RenewDeadline
	}
	cs, err := coordclient.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if cfg.Namespace == "" {
		cfg.Namespace = namespace(kubeNS)
	}
	return &Backend{cfg: cfg, leases: cs.Leases(cfg.Namespace), resignCh: make(chan chan error)}, nil
}

func namespace(fromKubeconfig string) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	if fromKubeconfig != "" {
		return fromKubeconfig
	}
	return "default"
}

// SetLogger sends client-go's own log lines (klog, process-wide) to l,
// at debug level: the backend reports its failures as observations.
func (b *Backend) SetLogger(l *slog.Logger) {
	klog.SetSlogLogger(slog.New(debugHandler{l.With("source", "client-go").Handler()}))
}

// debugHandler logs every record at debug level.
type debugHandler struct{ slog.Handler }

func (h debugHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h debugHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return h.Handler.Handle(ctx, r)
}

func (h debugHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return debugHandler{h.Handler.WithAttrs(as)}
}

func (h debugHandler) WithGroup(g string) slog.Handler { return debugHandler{h.Handler.WithGroup(g)} }

// Namespace returns the Lease's namespace.
func (b *Backend) Namespace() string { return b.cfg.Namespace }

// campaign is one Campaign's state.
type campaign struct {
	b    *Backend
	c    backend.Candidate
	obs  func(backend.Observation)
	cfg  Config
	last *coordinationv1.Lease // latest version seen
	// observedAt is when the holder/renewTime/transitions last changed, by
	// our clock (as client-go: other replicas' clocks are not trusted).
	observedAt  time.Time
	observedKey string

	leading     bool
	epoch       uint64
	renewedAt   time.Time // send time of the last successful write while leading
	holdOffTill time.Time // after a resign: leave the Lease to the others
	lastErr     error
}

// Campaign implements backend.Backend.
func (b *Backend) Campaign(ctx context.Context, c backend.Candidate, observe func(backend.Observation)) error {
	cp := &campaign{b: b, c: c, obs: observe, cfg: b.cfg}
	poke := make(chan struct{}, 1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go b.watch(wctx, poke)

	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cp.release()
			return nil
		case reply := <-b.resignCh:
			if !cp.leading {
				reply <- backend.ErrNotLeader
				continue
			}
			err := cp.release()
			if err == nil {
				cp.holdOffTill = time.Now().Add(cp.cfg.LeaseDuration)
			}
			reply <- err
		case <-poke:
		case <-t.C:
		}
		cp.step(ctx)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(cp.cfg.RetryPeriod)
	}
}

// watch pokes the campaign on every change of the Lease; it re-establishes
// itself with backoff.
func (b *Backend) watch(ctx context.Context, poke chan<- struct{}) {
	backoff := retry.NewBackoff(watchRetry)
	for ctx.Err() == nil {
		w, err := b.leases.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", b.cfg.Name).String()})
		if err == nil {
			backoff.Reset()
			for range w.ResultChan() {
				select {
				case poke <- struct{}{}:
				default:
				}
			}
			w.Stop()
		}
		d, _ := backoff.Next()
		if retry.Sleep(ctx, d) != nil {
			return
		}
	}
}

// watchRetry spaces the re-established watches: 100ms, doubling, at most
// 5s, with jitter.
var watchRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

func (cp *campaign) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(cp.cfg.RetryPeriod, cp.cfg.RenewDeadline/2))
}

// step reads the Lease and renews, acquires or follows.
func (cp *campaign) step(ctx context.Context) {
	now := time.Now()
	rctx, cancel := cp.reqCtx(ctx)
	lease, err := cp.b.leases.Get(rctx, cp.cfg.Name, metav1.GetOptions{})
	cancel()
	switch {
	case apierrors.IsNotFound(err):
		cp.create(ctx)
		return
	case err != nil:
		cp.fail(now, fmt.Errorf("reading Lease %s/%s: %w", cp.cfg.Namespace, cp.cfg.Name, err))
		return
	}
	cp.see(lease, now)
	spec := lease.Spec
	holder := deref(spec.HolderIdentity)
	expired := now.After(cp.observedAt.Add(seconds(spec.LeaseDurationSeconds, cp.cfg.LeaseDuration)))
	switch {
	case holder == cp.c.ID && cp.leading:
		cp.write(ctx, lease, false, now)
	case holder != "" && holder != cp.c.ID && !expired:
		if cp.leading {
			cp.stepDown("another replica holds the Lease")
		}
		cp.report()
	case now.Before(cp.holdOffTill):
		cp.report()
	default: // free, expired, or ours from an earlier life
		cp.write(ctx, lease, true, now)
	}
}

// see records a Lease version and when it last changed.
func (cp *campaign) see(l *coordinationv1.Lease, now time.Time) {
	s := l.Spec
	key := fmt.Sprintf("%s|%v|%d", deref(s.HolderIdentity), s.RenewTime, deref32(s.LeaseTransitions))
	if key != cp.observedKey {
		cp.observedKey, cp.observedAt = key, now
	}
	cp.last = l
}

func (cp *campaign) create(ctx context.Context) {
	now := time.Now()
	mt := metav1.NewMicroTime(now)
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: cp.cfg.Name, Namespace: cp.cfg.Namespace, Annotations: map[string]string{AddressAnnotation: cp.c.Address}},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr(cp.c.ID),
			LeaseDurationSeconds: ptr(int32(secondsCeil(cp.cfg.LeaseDuration))),
			AcquireTime:          &mt,
			RenewTime:            &mt,
			LeaseTransitions:     ptr(int32(1)),
		},
	}
	rctx, cancel := cp.reqCtx(ctx)
	got, err := cp.b.leases.Create(rctx, l, metav1.CreateOptions{})
	cancel()
	if err != nil {
		if !apierrors.IsAlreadyExists(err) {
			cp.fail(now, fmt.Errorf("creating Lease %s/%s: %w", cp.cfg.Namespace, cp.cfg.Name, err))
		}
		return
	}
	cp.won(got, now)
}

// write renews (acquire false) or acquires the Lease under
// compare-and-swap on its resourceVersion.
func (cp *campaign) write(ctx context.Context, cur *coordinationv1.Lease, acquire bool, now time.Time) {
	l := cur.DeepCopy()
	mt := metav1.NewMicroTime(now)
	l.Spec.RenewTime = &mt
	l.Spec.LeaseDurationSeconds = ptr(int32(secondsCeil(cp.cfg.LeaseDuration)))
	if acquire {
		l.Spec.HolderIdentity = ptr(cp.c.ID)
		l.Spec.AcquireTime = &mt
		l.Spec.LeaseTransitions = ptr(deref32(l.Spec.LeaseTransitions) + 1)
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[AddressAnnotation] = cp.c.Address
	}
	rctx, cancel := cp.reqCtx(ctx)
	got, err := cp.b.leases.Update(rctx, l, metav1.UpdateOptions{})
	cancel()
	if err != nil {
		if apierrors.IsConflict(err) {
			// Someone else wrote first: follow what is there now.
			cp.lastErr = nil
			if cp.leading && !acquire && time.Since(cp.renewedAt) > cp.cfg.RenewDeadline {
				cp.stepDown("renewal lost a compare-and-swap")
			}
			return
		}
		cp.fail(now, fmt.Errorf("writing Lease %s/%s: %w", cp.cfg.Namespace, cp.cfg.Name, err))
		return
	}
	cp.won(got, now)
}

func (cp *campaign) won(l *coordinationv1.Lease, sentAt time.Time) {
	cp.see(l, sentAt)
	cp.leading = true
	cp.epoch = uint64(deref32(l.Spec.LeaseTransitions))
	cp.renewedAt = sentAt
	cp.lastErr = nil
	cp.report()
}

func (cp *campaign) stepDown(why string) {
	cp.leading = false
	cp.epoch = 0
	_ = why
}

// fail reports an error; a leader that cannot renew within RenewDeadline
// stops leading.
func (cp *campaign) fail(now time.Time, err error) {
	cp.lastErr = err
	if cp.leading && now.Sub(cp.renewedAt) > cp.cfg.RenewDeadline {
		cp.stepDown("renew deadline passed")
	}
	if cp.leading {
		cp.report() // still within the deadline: keep claiming until Expires
		return
	}
	cp.obs(backend.Observation{Err: err})
}

// report observes the current state.
func (cp *campaign) report() {
	if cp.leading {
		cp.obs(backend.Observation{Leader: cp.c.ID, Address: cp.c.Address, Epoch: cp.epoch, Expires: cp.renewedAt.Add(cp.cfg.RenewDeadline)})
		return
	}
	l := cp.last
	if l == nil {
		cp.obs(backend.Observation{})
		return
	}
	holder := deref(l.Spec.HolderIdentity)
	dur := seconds(l.Spec.LeaseDurationSeconds, cp.cfg.LeaseDuration)
	exp := cp.observedAt.Add(dur)
	if holder == "" || holder == cp.c.ID || time.Now().After(exp) {
		cp.obs(backend.Observation{})
		return
	}
	cp.obs(backend.Observation{Leader: holder, Address: l.Annotations[AddressAnnotation], Epoch: uint64(deref32(l.Spec.LeaseTransitions)), Expires: exp})
}

// release clears the holder (keeping the transitions count), so that the
// next replica takes over at once with the next epoch. A renewal cut short
// by a cancelled context may still have landed: on a conflict it reads
// the Lease again and retries while this replica still holds it.
func (cp *campaign) release() error {
	if !cp.leading || cp.last == nil {
		return nil
	}
	cp.stepDown("released")
	ctx, cancel := context.WithTimeout(context.Background(), cp.cfg.RenewDeadline)
	defer cancel()
	cur := cp.last
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if deref(cur.Spec.HolderIdentity) != cp.c.ID {
			cp.see(cur, time.Now())
			cp.report()
			return nil // someone else holds it already
		}
		l := cur.DeepCopy()
		mt := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity = ptr("")
		l.Spec.RenewTime = &mt
		l.Spec.LeaseDurationSeconds = ptr(int32(1))
		var got *coordinationv1.Lease
		got, err = cp.b.leases.Update(ctx, l, metav1.UpdateOptions{})
		if err == nil {
			cp.see(got, time.Now())
			cp.report()
			return nil
		}
		if !apierrors.IsConflict(err) {
			break
		}
		if cur, err = cp.b.leases.Get(ctx, cp.cfg.Name, metav1.GetOptions{}); err != nil {
			break
		}
	}
	cp.report()
	return fmt.Errorf("releasing Lease %s/%s: %w", cp.cfg.Namespace, cp.cfg.Name, err)
}

// Resign implements backend.Backend: the Lease is released and this
// replica leaves it to the others for one LeaseDuration.
func (b *Backend) Resign(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case b.resignCh <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func ptr[T any](v T) *T { return &v }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func deref32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func seconds(p *int32, def time.Duration) time.Duration {
	if p == nil || *p <= 0 {
		return def
	}
	return time.Duration(*p) * time.Second
}

func secondsCeil(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
