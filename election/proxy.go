package election

import (
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/podkit/podkit/election/fence"
)

// Proxy is the leader proxy: it forwards every request to the current
// leader's advertised address, adding X-Leader-Epoch (and the usual
// X-Forwarded-* headers). While no leader is known, or the leader
// advertised no address, it answers 503 with Retry-After.
func (e *Elector) Proxy() http.Handler {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			st := pr.In.Context().Value(stateKey{}).(State)
			u, _ := targetURL(st.Address) // validated in serve
			pr.SetURL(u)
			pr.SetXForwarded()
			pr.Out.Header.Set(fence.Header, strconv.FormatUint(st.Epoch, 10))
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			e.m.proxied.WithLabelValues("error").Inc()
			e.log.Warn("leader proxy: leader unreachable", "error", err)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "podkit elect: leader unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := e.Leader()
		if st.Leader == "" || st.Address == "" {
			e.m.proxied.WithLabelValues("no_leader").Inc()
			w.Header().Set("Retry-After", "1")
			msg := "podkit elect: no leader known"
			if st.Leader != "" {
				msg = "podkit elect: leader " + st.Leader + " advertised no address (--advertise)"
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		if _, err := targetURL(st.Address); err != nil {
			e.m.proxied.WithLabelValues("error").Inc()
			http.Error(w, "podkit elect: leader address: "+err.Error(), http.StatusBadGateway)
			return
		}
		e.m.proxied.WithLabelValues("forwarded").Inc()
		rp.ServeHTTP(w, r.WithContext(withState(r.Context(), st)))
	})
}
