package logs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/podkit/podkit/adapter/logs/multiline"
	"github.com/podkit/podkit/adapter/logs/parse"
	"github.com/podkit/podkit/adapter/logs/tail"
)

// syncWriter serializes whole writes from the file pipeline and the
// slowlog pollers, so their lines never interleave.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// flushBytes is the output buffer size that triggers a write.
const flushBytes = 256 << 10

// pipeline turns lines into output events: multiline merging per source,
// parsing, encoding into one reusable buffer, one write per batch, and
// then the commit of each source's position. It is a tail.Handler and
// runs on one goroutine.
type pipeline struct {
	out    io.Writer
	parser *parse.Parser // nil: no parsing
	auto   bool          // lines no format claims are plain text, not failures
	rule   *multiline.Rule
	rules  []multiline.PathRule
	input  string // file or stdin
	m      *metrics
	clock  func() time.Time // observed time of events without their own

	enc     encoder
	rec     parse.Record
	touched []*srcState
	now     time.Time
	tick    int
	err     error

	// counted here, added to the metrics on each write
	linesIn, bytesIn, eventsOut, tsFail uint64
	parseFail                           [8]uint64
}

type srcState struct {
	p          *pipeline
	s          *tail.Source
	agg        *multiline.Aggregator
	src        source
	pendingEnd int64
	touched    bool
	// aggregator statistics already published
	merged, trunc, truncBytes uint64
}

// Emit implements multiline.Sink.
func (st *srcState) Emit(ev multiline.Event) { st.p.emit(st, ev) }

var _ tail.Handler = (*pipeline)(nil)

func (p *pipeline) state(s *tail.Source) *srcState {
	if st, ok := s.Value.(*srcState); ok {
		return st
	}
	st := &srcState{p: p, s: s}
	if p.input == "stdin" {
		st.src = newSource("stdin", "", "", false)
	} else {
		st.src = newSource("file", "path", s.Path, true)
	}
	rule := p.rule
	for _, r := range p.rules {
		if r.Applies(s.Path) {
			rule = r.Rule
			break
		}
	}
	if rule != nil {
		st.agg = rule.New()
	}
	s.Value = st
	return st
}

// Line implements tail.Handler.
func (p *pipeline) Line(s *tail.Source, line []byte, end int64) error {
	st := p.state(s)
	p.linesIn++
	p.bytesIn += uint64(len(line)) + 1
	if p.tick++; p.tick&255 == 0 {
		p.now = p.clock()
	}
	if st.agg != nil {
		st.agg.Push(line, end, p.now, st)
	} else {
		p.emit(st, multiline.Event{Data: line, Lines: 1, End: end})
	}
	return p.err
}

// Idle implements tail.Handler.
func (p *pipeline) Idle(s *tail.Source, _ time.Time) error {
	p.now = p.clock()
	st := p.state(s)
	if st.agg != nil && st.agg.Expired(p.now) {
		st.agg.Flush(st)
	}
	return p.err
}

// Drain implements tail.Handler.
func (p *pipeline) Drain(s *tail.Source) error {
	st := p.state(s)
	if st.agg != nil {
		st.agg.Flush(st)
	}
	return p.err
}

func (p *pipeline) emit(st *srcState, ev multiline.Event) {
	parsed := false
	if p.parser != nil {
		f, err := p.parser.Parse(ev.Data, &p.rec)
		switch {
		case err == nil:
			parsed = true
		case f != parse.None:
			p.parseFail[f]++
		case !p.auto:
			p.parseFail[0]++ // unmatched
		}
		if p.rec.TimeFailed {
			p.tsFail++
		}
	} else {
		p.rec.Reset()
		p.rec.Body = ev.Data
	}
	p.enc.event(&p.rec, parsed, ev.Lines, ev.Truncated, p.now, &st.src, ev.End)
	p.eventsOut++
	st.pendingEnd = ev.End
	if !st.touched {
		st.touched = true
		p.touched = append(p.touched, st)
	}
	if len(p.enc.buf) >= flushBytes {
		p.Flush()
	}
}

// Flush implements tail.Handler: one write of everything encoded, then
// the positions of the written events are committed.
func (p *pipeline) Flush() error {
	if p.err != nil {
		return p.err
	}
	if n := len(p.enc.buf); n > 0 {
		if _, err := p.out.Write(p.enc.buf); err != nil {
			p.err = fmt.Errorf("writing output: %w", err)
			return p.err
		}
		p.m.bytesOut.Add(float64(n))
		p.m.fbOutBytes.WithLabelValues("stdout.0").Add(float64(n))
		p.enc.buf = p.enc.buf[:0]
	}
	for _, st := range p.touched {
		st.s.Commit(st.pendingEnd)
		st.touched = false
	}
	p.touched = p.touched[:0]
	p.publish()
	return nil
}

// publish adds the counts since the last call to the metrics.
func (p *pipeline) publish() {
	m := p.m
	if p.linesIn > 0 {
		m.linesIn.WithLabelValues(p.input).Add(float64(p.linesIn))
		m.bytesIn.WithLabelValues(p.input).Add(float64(p.bytesIn))
		name := "tail.0"
		if p.input == "stdin" {
			name = "stdin.0"
		}
		m.fbInRecords.WithLabelValues(name).Add(float64(p.linesIn))
		m.fbInBytes.WithLabelValues(name).Add(float64(p.bytesIn))
		p.linesIn, p.bytesIn = 0, 0
	}
	if p.eventsOut > 0 {
		m.eventsOut.Add(float64(p.eventsOut))
		m.fbOutRecs.WithLabelValues("stdout.0").Add(float64(p.eventsOut))
		p.eventsOut = 0
	}
	for f, n := range p.parseFail {
		if n > 0 {
			label := parse.Format(f).String()
			if f == 0 {
				label = "unmatched"
			}
			m.parseFailures.WithLabelValues(label).Add(float64(n))
			p.parseFail[f] = 0
		}
	}
	if p.tsFail > 0 {
		m.timestampFailures.Add(float64(p.tsFail))
		p.tsFail = 0
	}
}

// publishAggregator adds a source's multiline statistics to the metrics.
func (p *pipeline) publishAggregators(sts []*srcState) {
	for _, st := range sts {
		if st.agg == nil {
			continue
		}
		a := st.agg
		if d := a.Merged - st.merged; d > 0 {
			p.m.merged.Add(float64(d))
		}
		byBytes := a.TruncatedByBytes - st.truncBytes
		byLines := (a.Truncations - st.trunc) - byBytes
		if byLines > 0 {
			p.m.truncated.WithLabelValues("lines").Add(float64(byLines))
		}
		if byBytes > 0 {
			p.m.truncated.WithLabelValues("bytes").Add(float64(byBytes))
		}
		st.merged, st.trunc, st.truncBytes = a.Merged, a.Truncations, a.TruncatedByBytes
	}
}

// metricsHandler wraps the pipeline to publish multiline statistics of
// every source it has seen after each write.
type metricsHandler struct {
	*pipeline
	seen []*srcState
}

func (h *metricsHandler) Line(s *tail.Source, line []byte, end int64) error {
	if s.Value == nil {
		h.seen = append(h.seen, h.state(s))
	}
	return h.pipeline.Line(s, line, end)
}

// Closed lets go of a closed file's state (its multiline buffer).
func (h *metricsHandler) Closed(s *tail.Source) {
	st, ok := s.Value.(*srcState)
	if !ok {
		return
	}
	h.publishAggregators([]*srcState{st})
	for i, o := range h.seen {
		if o == st {
			h.seen = append(h.seen[:i], h.seen[i+1:]...)
			break
		}
	}
	s.Value = nil
}

func (h *metricsHandler) Flush() error {
	err := h.pipeline.Flush()
	h.publishAggregators(h.seen)
	return err
}

// runStdin feeds standard input through the pipeline until it ends (EOF:
// the last line is emitted, even without a newline) or ctx ends.
func (p *pipeline) runStdin(ctx context.Context, in io.Reader, bufSize, maxLine int) error {
	h := &metricsHandler{pipeline: p}
	src := &tail.Source{Path: "-"}
	type chunk struct {
		b   []byte
		err error
	}
	chunks := make(chan chunk)
	free := make(chan []byte, 2)
	free <- make([]byte, bufSize)
	free <- make([]byte, bufSize)
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-readCtx.Done():
				return
			}
			n, err := in.Read(buf)
			select {
			case chunks <- chunk{buf[:n], err}:
			case <-readCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	interval := time.Second
	if p.rule != nil {
		interval = max(p.rule.Timeout/4, 10*time.Millisecond)
		if p.rule.Timeout == 0 {
			interval = multiline.DefaultTimeout / 4
		}
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var carry []byte
	var offset int64
	finish := func() error {
		if len(carry) > 0 {
			h.Line(src, bytes.TrimSuffix(carry, []byte("\r")), offset)
		}
		h.Drain(src)
		return h.Flush()
	}
	for {
		select {
		case <-ctx.Done():
			carry = nil // an unfinished line may still be completed by the writer
			return finish()
		case now := <-ticker.C:
			h.Idle(src, now)
			if err := h.Flush(); err != nil {
				return err
			}
		case c := <-chunks:
			p.now = p.clock()
			data := c.b
			for len(data) > 0 {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					carry = append(carry, data...)
					offset += int64(len(data))
					for len(carry) >= maxLine {
						offset0 := offset - int64(len(carry)) + int64(maxLine)
						h.Line(src, carry[:maxLine], offset0)
						carry = append(carry[:0], carry[maxLine:]...)
					}
					break
				}
				offset += int64(i + 1)
				line := data[:i]
				if len(carry) > 0 {
					carry = append(carry, line...)
					line = carry
				}
				line = bytes.TrimSuffix(line, []byte("\r"))
				if err := h.Line(src, line, offset); err != nil {
					return err
				}
				carry = carry[:0]
				data = data[i+1:]
			}
			free <- c.b[:cap(c.b)]
			if err := h.Flush(); err != nil {
				return err
			}
			if c.err == io.EOF {
				return finish()
			}
			if c.err != nil {
				finish()
				return fmt.Errorf("reading standard input: %w", c.err)
			}
		}
	}
}
