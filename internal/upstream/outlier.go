package upstream

import "time"

// eject takes e out after its n-th failure in a row (see the package doc),
// unless MaxPercent forbids it; a refused ejection is tried again at the
// next failure.
func (p *Pool) eject(e *Endpoint, r Result, failures int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || e.removed.Load() || e.ejected.Load() || e.failures.Load() < int64(p.cfg.Outlier.ConsecutiveFailures) {
		return
	}
	total, ejected := 0, 0
	for _, d := range p.set.Routable() {
		if x := p.eps[d.Addr()]; x != nil {
			total++
			if x.ejected.Load() {
				ejected++
			}
		}
	}
	if !ejectionAllowed(total, ejected, p.cfg.Outlier.MaxPercent) {
		p.log.Debug("endpoint not ejected: too many ejected already",
			"endpoint", e.addr, "failures", failures, "ejected", ejected, "endpoints", total, "max_percent", p.cfg.Outlier.MaxPercent)
		return
	}
	now := time.Now()
	if !e.lastReturn.IsZero() && now.Sub(e.lastReturn) >= p.cfg.Outlier.MaxEjection {
		e.streak = 0
	}
	e.streak++
	e.ejections++
	d := p.cfg.Outlier.period(e.streak)
	e.ejectedUntil = now.Add(d)
	e.ejected.Store(true)
	if p.m != nil {
		p.m.ejections.WithLabelValues(p.name, e.addr).Inc()
	}
	p.log.Warn("endpoint ejected", "endpoint", e.addr, "why", r.String(), "failures", failures, "for", d, "ejections", e.ejections)
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
	}
	e.ejectTimer = time.AfterFunc(d, func() { p.unEject(e) })
	p.rebuildLocked()
}

func (p *Pool) unEject(e *Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !e.ejected.Load() || e.removed.Load() || time.Now().Before(e.ejectedUntil) {
		return
	}
	e.ejected.Store(false)
	e.failures.Store(0)
	e.lastReturn = time.Now()
	e.ejectedUntil = time.Time{}
	p.log.Info("endpoint returned from ejection", "endpoint", e.addr)
	if !p.closed {
		p.rebuildLocked()
	}
}

// ejectionAllowed: one more ejection keeps the ejected within maxPercent of
// total, or it is the first ejection among more than one endpoint.
func ejectionAllowed(total, ejected, maxPercent int) bool {
	if total == 0 {
		return false
	}
	if (ejected+1)*100 <= maxPercent*total {
		return true
	}
	return total > 1 && ejected == 0
}

// period is how long the n-th ejection in a streak lasts.
func (c OutlierConfig) period(n int) time.Duration {
	return min(time.Duration(n)*c.BaseEjection, c.MaxEjection)
}
