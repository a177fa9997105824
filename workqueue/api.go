package workqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/workqueue/store"
)

// HandlerOptions configure the HTTP API.
type HandlerOptions struct {
	// MaxPayload is the largest item payload in bytes (default 1 MiB).
	MaxPayload int64
	// MaxBody is the largest request body in bytes (default 64 MiB, and
	// at least MaxPayload + 64 KiB).
	MaxBody int64
	// Queues are declared queues; with StrictQueues, the only ones.
	Queues       []string
	StrictQueues bool
	// Paused reports whether leases are held back (the container's
	// POST /pause); nil means never. PauseChanged signals a change.
	Paused       func() bool
	PauseChanged func() <-chan struct{}
	// Stopping ends long-polls (nil: only the request's context).
	Stopping <-chan struct{}
	Logger   *slog.Logger
	// Metrics, if set, observes completions and dispatches.
	Metrics *Metrics
}

// API is the coordinator's HTTP API over a Store.
type API struct {
	s    store.Store
	o    HandlerOptions
	mux  *http.ServeMux
	log  *slog.Logger
	decl map[string]bool

	rmu   sync.Mutex
	rates map[string]*rateRing

	hmu     sync.Mutex
	hold    context.Context // see holdCtx
	holdFor <-chan struct{}
}

// The roles of the queue's API (see docs/queue.md#security). A token or
// an allowed client certificate has one or more of them.
const (
	// RoleProducer enqueues items and reads an item by its id (to check
	// on one it enqueued).
	RoleProducer = "producer"
	// RoleWorker leases items and heartbeats, acks and nacks its leases.
	RoleWorker = "worker"
	// RoleAdmin inspects and manages: counts, listings, cancel, replay.
	RoleAdmin = "admin"
)

// Role lists for the route table: shared, never modified.
var (
	producer        = []string{RoleProducer}
	worker          = []string{RoleWorker}
	admin           = []string{RoleAdmin}
	producerOrAdmin = []string{RoleProducer, RoleAdmin}
	workerOrAdmin   = []string{RoleWorker, RoleAdmin}
	anyRole         = []string{RoleProducer, RoleWorker, RoleAdmin}
)

// endpoint is one method of a route: the roles any one of which may call
// it, and its handler.
type endpoint struct {
	method string
	roles  []string
	serve  func(*API, http.ResponseWriter, *http.Request)
}

// route is one path of the API.
type route struct {
	path      string
	endpoints []endpoint
	roles     []string // every role of its endpoints: what a 405 needs
}

// routes is the API: every path, method, handler and the roles that may
// call it, in one table, so that no endpoint is served without a role
// declared for it. Access, the handler's mux and the docs' table follow
// it.
var routes = withRoles([]route{
	{path: "/queues", endpoints: []endpoint{{"GET", admin, (*API).listQueues}}},
	{path: "/queues/{q}", endpoints: []endpoint{{"GET", admin, (*API).stats}}},
	{path: "/queues/{q}/items", endpoints: []endpoint{{"POST", producer, (*API).enqueue}, {"GET", admin, (*API).list}}},
	{path: "/queues/{q}/items/{id}", endpoints: []endpoint{{"GET", producerOrAdmin, (*API).get}, {"DELETE", admin, (*API).cancel}}},
	{path: "/queues/{q}/items/{id}/replay", endpoints: []endpoint{{"POST", admin, (*API).replayOne}}},
	{path: "/queues/{q}/dead", endpoints: []endpoint{{"GET", admin, (*API).listDead}}},
	{path: "/queues/{q}/dead/replay", endpoints: []endpoint{{"POST", admin, (*API).replay}}},
	{path: "/queues/{q}/drained", endpoints: []endpoint{{"GET", workerOrAdmin, (*API).drained}}},
	{path: "/queues/{q}/lease", endpoints: []endpoint{{"POST", worker, (*API).lease}}},
	{path: "/leases/{token}/{op}", endpoints: []endpoint{{"POST", worker, (*API).completeOne}}},
	{path: "/leases/{op}", endpoints: []endpoint{{"POST", worker, (*API).completeMany}}},
})

// withRoles fills each route's roles: those of its endpoints.
func withRoles(rs []route) []route {
	for i := range rs {
		for _, e := range rs[i].endpoints {
			for _, r := range e.roles {
				if !slices.Contains(rs[i].roles, r) {
					rs[i].roles = append(rs[i].roles, r)
				}
			}
		}
	}
	return rs
}

// Route is one endpoint of the API and the roles that may call it.
type Route struct {
	Method string   // GET, POST, DELETE
	Path   string   // a net/http pattern: /queues/{q}/items
	Roles  []string // any one of them suffices
}

// Routes returns every endpoint of the API with its roles, in the order
// of the table.
func Routes() []Route {
	var out []Route
	for _, rt := range routes {
		for _, e := range rt.endpoints {
			out = append(out, Route{Method: e.method, Path: rt.path, Roles: slices.Clone(e.roles)})
		}
	}
	return out
}

// matcher matches a request to its route exactly as the API's mux does
// (it is a mux with the same patterns), so the role a request needs is
// the role of the handler that serves it: a path the mux would route
// somewhere cannot be checked against another route's roles.
var matcher, byPattern = func() (*http.ServeMux, map[string]*route) {
	m := http.NewServeMux()
	by := make(map[string]*route, len(routes))
	for i := range routes {
		m.Handle(routes[i].path, http.NotFoundHandler())
		by[routes[i].path] = &routes[i]
	}
	m.Handle("/", http.NotFoundHandler())
	return m, by
}()

// segments are the routes' patterns split at "/", a wildcard as "": the
// fast path of need.
var segments = func() [][]string {
	out := make([][]string, len(routes))
	for i, rt := range routes {
		for _, seg := range strings.Split(rt.path[1:], "/") {
			if strings.HasPrefix(seg, "{") {
				seg = ""
			}
			out[i] = append(out[i], seg)
		}
	}
	return out
}()

// plainRoute finds the route of a plain path — clean (no empty, "." or
// ".." segment), unescaped (no "%") — without the mux and without
// allocating: on such a path the mux's matching is exactly this (a
// literal segment equals, a wildcard takes any non-empty one, and no two
// patterns match one path). ok is false for any other path: the mux
// decides.
func plainRoute(path string) (rt *route, ok bool) {
	if len(path) < 2 || path[0] != '/' || strings.IndexByte(path, '%') >= 0 {
		return nil, false
	}
	n := 0
	for rest := path[1:]; ; n++ {
		seg, more, found := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return nil, false
		}
		if !found {
			break
		}
		rest = more
	}
	n++
	for i, segs := range segments {
		if len(segs) != n {
			continue
		}
		rest, match := path[1:], true
		for _, want := range segs {
			var seg string
			seg, rest, _ = strings.Cut(rest, "/")
			if want != "" && seg != want {
				match = false
				break
			}
		}
		if match {
			return &routes[i], true
		}
	}
	return nil, true // no route: the mux's catch-all, 404
}

// Access is who may call what on the queue's API: its three roles, and
// the route table's role for each request. A path that is no endpoint is
// public (it answers 404 and says nothing else); a method a path does not
// serve needs one of that path's roles (its 405 lists the methods); a
// request the mux would redirect (an unclean path) needs a role, of the
// route it would reach or else any.
func Access() container.Access {
	return container.Access{
		Component: "queue",
		Subsystem: "queue",
		Roles: []container.Role{
			{Name: RoleProducer, Help: "enqueue items (POST /queues/{q}/items) and read an item (GET /queues/{q}/items/{id})"},
			{Name: RoleWorker, Help: "lease items (POST /queues/{q}/lease), heartbeat, ack and nack them (POST /leases/...), and ask whether a queue is drained"},
			{Name: RoleAdmin, Help: "read counts and items, cancel, replay dead items, and ask whether a queue is drained"},
		},
		Need: need,
	}
}

// need is Access's Need: the route's roles for the request's method. A
// plain path is matched without allocating (plainRoute); any other is
// matched by the mux.
func need(r *http.Request) []string {
	if r.Method == http.MethodConnect || r.URL.RawPath != "" {
		return needMux(r)
	}
	rt, ok := plainRoute(r.URL.Path)
	if !ok {
		return needMux(r)
	}
	if rt == nil {
		return nil // no such endpoint: 404 to anyone
	}
	return rt.need(r.Method)
}

// needMux is need for any request: the mux finds its route.
func needMux(r *http.Request) []string {
	_, pattern := matcher.Handler(r)
	rt := byPattern[pattern]
	switch {
	case rt != nil:
		return rt.need(r.Method)
	case pattern == "/":
		return nil // no such endpoint: 404 to anyone
	}
	return anyRole // anything else the mux does (a redirect): some role
}

// need returns the roles of the route's method: HEAD is GET; a method the
// route does not serve needs one of its roles (before its 405).
func (rt *route) need(method string) []string {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for _, e := range rt.endpoints {
		if e.method == method {
			return e.roles
		}
	}
	return rt.roles
}

// callerName names who made r for the log: the token's name or the
// certificate's identity; "" when the API takes no credentials.
func callerName(r *http.Request) string {
	id, _ := container.CallerOf(r)
	return id.Name
}

// NewHandler returns the HTTP API over s. It checks no credentials: the
// coordinator serves it behind container.OpenAPI with Access, which
// refuses a request without one of its route's roles before it gets here.
func NewHandler(s store.Store, o HandlerOptions) *API {
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 20
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 64 << 20
	}
	o.MaxBody = max(o.MaxBody, o.MaxPayload+64<<10)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a := &API{s: s, o: o, mux: http.NewServeMux(), log: o.Logger, decl: map[string]bool{}, rates: map[string]*rateRing{}}
	for _, q := range o.Queues {
		a.decl[q] = true
	}
	for _, rt := range routes {
		m := make(map[string]http.HandlerFunc, len(rt.endpoints))
		for _, e := range rt.endpoints {
			m[e.method] = func(w http.ResponseWriter, r *http.Request) { e.serve(a, w, r) }
		}
		a.mux.Handle(rt.path, methods(m))
	}
	a.mux.HandleFunc("/", notFound)
	return a
}

// notFound answers a path that is no endpoint. It is public (an unknown
// path needs no role) and says nothing but what the caller sent.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s %s (see docs/queue.md)", r.Method, r.URL.Path))
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func methods(m map[string]http.HandlerFunc) http.Handler {
	var allow []string
	for k := range m {
		allow = append(allow, k)
	}
	slices.Sort(allow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m["GET"]
		}
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		h(w, r)
	})
}

type errorBody struct {
	Error string `json:"error"`
}

// jsonBufs recycles the buffers answers are encoded into (the hot path
// answers every lease and ack with a few hundred bytes of JSON).
var jsonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var contentTypeJSON = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			jsonBufs.Put(buf)
		}
	}()
	// Encode is json.Marshal followed by a newline.
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		status = 500
		buf.Reset()
		buf.WriteString(`{"error":"encoding the answer failed"}` + "\n")
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON // shared, never modified
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// statusOf maps store errors to HTTP statuses.
func statusOf(err error) int {
	var re *requestError
	switch {
	case errors.As(err, &re):
		return re.status
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrStaleLease), errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, store.ErrBadToken), errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (a *API) fail(w http.ResponseWriter, err error) {
	st := statusOf(err)
	if st == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if st >= 500 && st != http.StatusServiceUnavailable {
		a.log.Error("request failed", "error", err)
	}
	writeError(w, st, err.Error())
}

// queueName validates {q} and, with --strict-queues, that it is declared.
func (a *API) queueName(w http.ResponseWriter, r *http.Request) (string, bool) {
	q := r.PathValue("q")
	if err := store.ValidQueueName(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if a.o.StrictQueues && !a.decl[q] {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no queue %q (the coordinator runs with --strict-queues; declare it with --queue)", q))
		return "", false
	}
	return q, true
}

// readBody reads the body up to MaxBody.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > a.o.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over the limit of %d bytes", r.ContentLength, a.o.MaxBody))
		return nil, false
	}
	if r.ContentLength >= 0 {
		// The usual case: one allocation of the right size (the server
		// holds the body to its Content-Length).
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
			return nil, false
		}
		return b, true
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(io.LimitReader(r.Body, a.o.MaxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return nil, false
	}
	if int64(buf.Len()) > a.o.MaxBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the limit of %d bytes", a.o.MaxBody))
		return nil, false
	}
	return buf.Bytes(), true
}

// EnqueueResult is one item's answer in a batch enqueue.
type EnqueueResult struct {
	Status    int    `json:"status"`
	ID        string `json:"id,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (a *API) enqueue(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	ndjson := strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-ndjson")
	items, batch, err := decodeEnqueue(body, q, ndjson, a.o.MaxPayload, time.Now())
	if err != nil {
		a.fail(w, err)
		return
	}
	results := make([]EnqueueResult, len(items))
	valid := make([]store.NewItem, 0, len(items))
	idx := make([]int, 0, len(items))
	for i, it := range items {
		if it.status != 0 {
			results[i] = EnqueueResult{Status: it.status, Error: it.err}
			continue
		}
		valid = append(valid, it.item)
		idx = append(idx, i)
	}
	if len(valid) > 0 {
		res, err := a.s.Enqueue(r.Context(), valid)
		if err != nil {
			a.fail(w, err)
			return
		}
		for j, rr := range res {
			i := idx[j]
			switch {
			case rr.Err != nil:
				results[i] = EnqueueResult{Status: statusOf(rr.Err), Error: rr.Err.Error()}
			case rr.Duplicate:
				results[i] = EnqueueResult{Status: http.StatusOK, ID: rr.ID, Duplicate: true}
			default:
				results[i] = EnqueueResult{Status: http.StatusCreated, ID: rr.ID}
			}
		}
	}
	if batch {
		writeJSON(w, http.StatusOK, struct {
			Items []EnqueueResult `json:"items"`
		}{results})
		return
	}
	res := results[0]
	if res.Error != "" {
		if res.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, res.Status, res.Error)
		return
	}
	writeJSON(w, res.Status, res)
}

// LeaseJSON is a leased item as the API answers it.
type LeaseJSON struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	Payload        json.RawMessage `json:"payload"`
	Attempt        int             `json:"attempt"`
	Token          string          `json:"token"`
	Deadline       time.Time       `json:"deadline"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
}

func (a *API) paused() bool { return a.o.Paused != nil && a.o.Paused() }

func (a *API) lease(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	wait, n, batch, err := decodeLease(body)
	if err != nil {
		a.fail(w, err)
		return
	}
	deadline := time.Now().Add(wait)
	var leases []store.Lease
	for {
		remaining := time.Until(deadline)
		if a.paused() {
			// While paused no leases are handed out: wait for a resume.
			if remaining <= 0 || !a.sleepPaused(r.Context(), remaining) {
				break
			}
			continue
		}
		ctx, cancel := context.WithCancel(r.Context())
		stop := func() bool { return false }
		if hold := a.holdCtx(); hold != nil {
			stop = context.AfterFunc(hold, cancel)
		}
		leases, err = a.s.Lease(ctx, store.LeaseRequest{Queue: q, Max: n, Wait: max(remaining, 0)})
		stop()
		cancel()
		if err != nil {
			a.fail(w, err)
			return
		}
		if len(leases) > 0 || time.Until(deadline) <= 0 || r.Context().Err() != nil || a.stopping() || !a.paused() {
			break
		}
	}
	if len(leases) > 0 && r.Context().Err() != nil {
		// The worker went away before it got them: give them back.
		cs := make([]store.Completion, len(leases))
		for i, l := range leases {
			cs[i] = store.Completion{Token: l.Token, Op: store.Release}
		}
		a.s.Complete(context.Background(), cs)
		return
	}
	if len(leases) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	now := time.Now()
	out := make([]LeaseJSON, len(leases))
	for i, l := range leases {
		out[i] = LeaseJSON{ID: l.ID, Queue: l.Queue, Payload: l.Payload, Attempt: l.Attempt, Token: l.Token, Deadline: l.Deadline, TimeoutSeconds: l.Timeout.Seconds()}
		if a.o.Metrics != nil && !l.ReadySince.IsZero() {
			a.o.Metrics.dispatch.WithLabelValues(l.Queue).Observe(max(now.Sub(l.ReadySince), 0).Seconds())
		}
	}
	if batch {
		writeJSON(w, http.StatusOK, struct {
			Items []LeaseJSON `json:"items"`
		}{out})
		return
	}
	writeJSON(w, http.StatusOK, out[0])
}

func (a *API) stopping() bool {
	if a.o.Stopping == nil {
		return false
	}
	select {
	case <-a.o.Stopping:
		return true
	default:
		return false
	}
}

// holdCtx returns a context that ends at the next pause or resume, or
// when the coordinator stops: lease waits end with it. One watcher serves
// every lease of the same pause epoch (a lease used to start its own);
// nil when there is nothing to watch.
func (a *API) holdCtx() context.Context {
	if a.o.PauseChanged == nil && a.o.Stopping == nil {
		return nil
	}
	var pc <-chan struct{}
	if a.o.PauseChanged != nil {
		pc = a.o.PauseChanged()
	}
	a.hmu.Lock()
	defer a.hmu.Unlock()
	if a.hold != nil && a.holdFor == pc {
		return a.hold
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.hold, a.holdFor = ctx, pc
	go func() {
		select {
		case <-pc:
		case <-a.o.Stopping:
		}
		cancel()
	}()
	return ctx
}

// sleepPaused waits up to d for a resume; false when the wait ended
// otherwise.
func (a *API) sleepPaused(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var pc <-chan struct{}
	if a.o.PauseChanged != nil {
		pc = a.o.PauseChanged()
	}
	if !a.paused() {
		return true
	}
	select {
	case <-pc:
		return !a.stopping()
	case <-t.C:
	case <-ctx.Done():
	case <-a.o.Stopping:
	}
	return false
}

// CompletionResult is one lease's answer in a batch heartbeat, ack or nack.
type CompletionResult struct {
	Token    string     `json:"token"`
	ID       string     `json:"id,omitempty"`
	Status   int        `json:"status"`
	State    string     `json:"state,omitempty"`
	Deadline *time.Time `json:"deadline,omitempty"`
	Error    string     `json:"error,omitempty"`
}

func parseOp(s string) (store.Op, bool) {
	switch s {
	case "ack":
		return store.Ack, true
	case "nack":
		return store.Nack, true
	case "heartbeat":
		return store.Heartbeat, true
	}
	return 0, false
}

func (a *API) completeOne(w http.ResponseWriter, r *http.Request) {
	op, ok := parseOp(r.PathValue("op"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such lease operation %q (want heartbeat, ack or nack)", r.PathValue("op")))
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	c := store.Completion{Op: op}
	if op == store.Nack {
		var err error
		if c, err = decodeSingleNack(body, r.Header.Get("Content-Type")); err != nil {
			a.fail(w, err)
			return
		}
	}
	c.Token = r.PathValue("token")
	res, err := a.complete(r.Context(), []store.Completion{c})
	if err != nil {
		a.fail(w, err)
		return
	}
	if res[0].Error != "" {
		writeError(w, res[0].Status, res[0].Error)
		return
	}
	writeJSON(w, res[0].Status, res[0])
}

func (a *API) completeMany(w http.ResponseWriter, r *http.Request) {
	op, ok := parseOp(r.PathValue("op"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint POST %s (want /leases/heartbeat, /leases/ack or /leases/nack for batches)", r.URL.Path))
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	cs, err := decodeBatchCompletion(body, op)
	if err != nil {
		a.fail(w, err)
		return
	}
	res, err := a.complete(r.Context(), cs)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Results []CompletionResult `json:"results"`
	}{res})
}

// complete is the one code path of single and batch completions.
func (a *API) complete(ctx context.Context, cs []store.Completion) ([]CompletionResult, error) {
	res, err := a.s.Complete(ctx, cs)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]CompletionResult, len(res))
	for i, rr := range res {
		out[i] = CompletionResult{Token: cs[i].Token, ID: rr.ID, Status: http.StatusOK, State: string(rr.State)}
		if rr.Err != nil {
			out[i].Status = statusOf(rr.Err)
			out[i].Error = rr.Err.Error()
			if a.o.Metrics != nil && errors.Is(rr.Err, store.ErrStaleLease) {
				a.o.Metrics.stale.Inc()
			}
			continue
		}
		if cs[i].Op == store.Heartbeat {
			d := rr.Deadline
			out[i].Deadline = &d
		}
		if a.o.Metrics != nil && (cs[i].Op == store.Ack || cs[i].Op == store.Nack) && !rr.Leased.IsZero() {
			result := "ack"
			if cs[i].Op == store.Nack {
				result = "nack"
			}
			a.o.Metrics.processing.WithLabelValues(rr.Queue, result).Observe(max(now.Sub(rr.Leased), 0).Seconds())
		}
	}
	return out, nil
}

// ItemJSON is an item as the API answers it.
type ItemJSON struct {
	store.Item
	Timeout string `json:"timeout"`
}

func itemJSON(it store.Item) ItemJSON { return ItemJSON{Item: it, Timeout: it.Timeout.String()} }

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	it, err := a.s.Get(r.Context(), q, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, itemJSON(it))
}

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	it, err := a.s.Cancel(r.Context(), q, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	a.log.Info("item cancelled", "queue", q, "item", it.ID, "by", callerName(r))
	writeJSON(w, http.StatusOK, itemJSON(it))
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	a.listState(w, r, q, r.URL.Query().Get("state"))
}

func (a *API) listDead(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	a.listState(w, r, q, string(store.Dead))
}

func (a *API) listState(w http.ResponseWriter, r *http.Request, q, stateName string) {
	qs := r.URL.Query()
	st, err := store.ParseState(stateName)
	if err != nil {
		writeError(w, http.StatusBadRequest, "state: "+strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
		return
	}
	limit := 100
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q is not a number from 1 to 1000", v))
			return
		}
		limit = n
	}
	page, err := a.s.List(r.Context(), store.ListRequest{Queue: q, State: st, Cursor: qs.Get("cursor"), Limit: limit})
	if errors.Is(err, store.ErrNotFound) && !a.o.StrictQueues {
		page, err = store.ListPage{}, nil
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	items := make([]ItemJSON, len(page.Items))
	for i, it := range page.Items {
		items[i] = itemJSON(it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": page.Next})
}

type replayRequest struct {
	IDs []string `json:"ids"`
}

func (a *API) replay(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	var req replayRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fieldError(err))
			return
		}
	}
	a.doReplay(w, r, q, req.IDs)
}

func (a *API) replayOne(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	a.doReplay(w, r, q, []string{r.PathValue("id")})
}

func (a *API) doReplay(w http.ResponseWriter, r *http.Request, q string, ids []string) {
	got, err := a.s.Replay(r.Context(), q, ids)
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(got) > 0 {
		a.log.Info("dead items replayed", "queue", q, "items", len(got), "by", callerName(r))
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": got})
}

// StatsJSON is GET /queues/{q}.
type StatsJSON struct {
	store.Stats
	InFlight              int     `json:"in_flight"`
	OldestReadyAgeSeconds float64 `json:"oldest_ready_age_seconds"`
	EnqueuedPerSecond     float64 `json:"enqueued_per_second"`
	AckedPerSecond        float64 `json:"acked_per_second"`
	FailedPerSecond       float64 `json:"failed_per_second"`
}

func (a *API) statsOf(ctx context.Context, q string) (StatsJSON, error) {
	st, err := a.s.Stats(ctx, q)
	if errors.Is(err, store.ErrNotFound) && a.decl[q] {
		st, err = store.Stats{Name: q}, nil
	}
	if err != nil {
		return StatsJSON{}, err
	}
	out := StatsJSON{Stats: st, InFlight: st.Leased}
	if !st.OldestReady.IsZero() {
		out.OldestReadyAgeSeconds = max(time.Since(st.OldestReady).Seconds(), 0)
	}
	out.EnqueuedPerSecond, out.AckedPerSecond, out.FailedPerSecond = a.rate(st)
	return out, nil
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	st, err := a.statsOf(r.Context(), q)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) listQueues(w http.ResponseWriter, r *http.Request) {
	names, err := a.allQueues(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]StatsJSON, 0, len(names))
	for _, n := range names {
		st, err := a.statsOf(r.Context(), n)
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

func (a *API) allQueues(ctx context.Context) ([]string, error) {
	names, err := a.s.Queues(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	for q := range a.decl {
		if !seen[q] {
			names = append(names, q)
		}
	}
	if a.o.StrictQueues {
		kept := names[:0]
		for _, n := range names {
			if a.decl[n] {
				kept = append(kept, n)
			}
		}
		names = kept
	}
	return names, nil
}

func (a *API) drained(w http.ResponseWriter, r *http.Request) {
	q, ok := a.queueName(w, r)
	if !ok {
		return
	}
	st, err := a.statsOf(r.Context(), q)
	if errors.Is(err, store.ErrNotFound) {
		st, err = StatsJSON{Stats: store.Stats{Name: q}}, nil
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	drained := st.Ready+st.Delayed+st.Leased == 0
	code := http.StatusOK
	if !drained {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"drained": drained, "ready": st.Ready, "delayed": st.Delayed, "leased": st.Leased, "done": st.Done, "dead": st.Dead})
}

// rateRing keeps one sample per second for a minute.
type rateRing struct {
	t                    []time.Time
	enq, acked, failures []uint64
}

// sample records every queue's counters; the coordinator calls it once a
// second.
func (a *API) sample(ctx context.Context) {
	names, err := a.s.Queues(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	for _, n := range names {
		st, err := a.s.Stats(ctx, n)
		if err != nil {
			continue
		}
		a.rmu.Lock()
		r := a.rates[n]
		if r == nil {
			r = &rateRing{}
			a.rates[n] = r
		}
		r.t = append(r.t, now)
		r.enq = append(r.enq, st.Enqueued)
		r.acked = append(r.acked, st.Acked)
		r.failures = append(r.failures, st.Nacked+st.Expired)
		if len(r.t) > 11 {
			r.t, r.enq, r.acked, r.failures = r.t[1:], r.enq[1:], r.acked[1:], r.failures[1:]
		}
		a.rmu.Unlock()
	}
}

// rate is the per-second rate over the last ten seconds.
func (a *API) rate(st store.Stats) (enq, acked, failed float64) {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	r := a.rates[st.Name]
	if r == nil || len(r.t) == 0 {
		return 0, 0, 0
	}
	d := time.Since(r.t[0]).Seconds()
	if d < 0.5 {
		return 0, 0, 0
	}
	per := func(now, then uint64) float64 {
		if now < then {
			return 0
		}
		return float64(now-then) / d
	}
	return per(st.Enqueued, r.enq[0]), per(st.Acked, r.acked[0]), per(st.Nacked+st.Expired, r.failures[0])
}
