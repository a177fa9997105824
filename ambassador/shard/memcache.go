package shard

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/podkit/podkit/ambassador/shard/internal/memcache"
)

// mcClient serves one memcached client connection.
type mcClient struct {
	*client
	rd  *memcache.Reader
	tmp []*server
}

const mnLine = "mn\r\n"

// lineError answers an error that leaves the stream in sync (the bad
// line was consumed) and reports whether it was one.
func (c *mcClient) lineError(err error) bool {
	switch {
	case errors.Is(err, memcache.ErrUnknownCommand):
		c.addLocal([]byte("ERROR\r\n"))
	case errors.Is(err, memcache.ErrBadLine):
		c.addLocal([]byte("CLIENT_ERROR bad command line format\r\n"))
	default:
		return false
	}
	return true
}

// readError answers an error after which the stream is lost.
func (c *mcClient) readError(err error) {
	switch {
	case errors.Is(err, memcache.ErrTooLarge):
		c.writeFinal(fmt.Appendf(nil, "SERVER_ERROR object too large for cache (%v; --max-bulk)\r\n", err))
	case errors.Is(err, memcache.ErrProtocol):
		c.writeFinal([]byte("CLIENT_ERROR bad data chunk\r\n"))
	}
}

func (c *mcClient) route(pl *pool, srv *server) *server {
	if srv == nil {
		c.addLocal(fmt.Appendf(nil, "SERVER_ERROR podkit shard: pool %s has no live servers\r\n", pl.cfg.Name))
		return nil
	}
	if pl.cfg.FailClosed && srv.down.Load() {
		c.addLocal(srv.downReply(Memcache))
		return nil
	}
	return srv
}

func (c *mcClient) handle(pl *pool, req *memcache.Request) {
	switch req.Kind {
	case memcache.KindGet:
		c.get(pl, req)
	case memcache.KindStore, memcache.KindKey:
		srv := c.route(pl, pl.pick(req.Keys[0]))
		if srv == nil {
			return
		}
		if req.NoReply {
			// The server stays silent; "mn" makes it answer so replies
			// stay in step. The reply before MN (an error, if any) is
			// dropped, as memcached drops it for noreply.
			out := append(append(make([]byte, 0, len(req.Raw)+len(mnLine)), req.Raw...), mnLine...)
			r := c.newReq(srv, out, replyUntilMN)
			c.slots = append(c.slots, slot{subs: []*request{r}, merge: dropReply})
			return
		}
		c.slots = append(c.slots, slot{req: c.newReq(srv, req.Raw, replyLine)})
	case memcache.KindMeta:
		srv := c.route(pl, pl.pickMeta(req.Keys[0], req.Base64))
		if srv == nil {
			return
		}
		if req.Quiet {
			out := append(append(make([]byte, 0, len(req.Raw)+len(mnLine)), req.Raw...), mnLine...)
			c.slots = append(c.slots, slot{req: c.newReq(srv, out, replyUntilMN)})
			return
		}
		c.slots = append(c.slots, slot{req: c.newReq(srv, req.Raw, replyLine)})
	case memcache.KindMetaNoop:
		c.addLocal([]byte("MN\r\n"))
	case memcache.KindLocal:
		switch string(req.Name) {
		case "version":
			c.addLocal([]byte("VERSION podkit-shard\r\n"))
		case "verbosity":
			if !req.NoReply && !bytes.HasSuffix(req.Line, []byte(" noreply")) {
				c.addLocal([]byte("OK\r\n"))
			}
		case "quit":
			c.addLocal(nil)
			c.slots[len(c.slots)-1].close = true
		}
	case memcache.KindUnsupported:
		c.addLocal(fmt.Appendf(nil, "CLIENT_ERROR podkit shard: '%s' is not supported: it addresses one server, not the pool\r\n", clip(req.Name)))
	}
}

func dropReply(dst []byte, s *slot) []byte { return dst }

// get splits a multi-key retrieval by server.
func (c *mcClient) get(pl *pool, req *memcache.Request) {
	servers := c.tmp[:0]
	same := true
	for _, k := range req.Keys {
		srv := c.route(pl, pl.pick(k))
		if srv == nil {
			c.tmp = servers[:0]
			return
		}
		servers = append(servers, srv)
		same = same && srv == servers[0]
	}
	c.tmp = servers[:0]
	if same {
		c.slots = append(c.slots, slot{req: c.newReq(servers[0], req.Raw, replyValues)})
		return
	}
	var order []*server
	pos := make([]int32, len(servers))
	for i, srv := range servers {
		j := 0
		for j < len(order) && order[j] != srv {
			j++
		}
		if j == len(order) {
			order = append(order, srv)
		}
		pos[i] = int32(j)
	}
	// The command and, for gat/gats, the exptime, then this server's keys.
	head := append([]byte(nil), req.Name...)
	for _, a := range req.Args[:req.KeyIndex] {
		head = append(append(head, ' '), a...)
	}
	pl.counters.fragments.Add(uint64(len(order)))
	subs := make([]*request, len(order))
	for j, srv := range order {
		out := append(make([]byte, 0, 64), head...)
		for i, k := range req.Keys {
			if servers[i] == srv {
				out = append(append(out, ' '), k...)
			}
		}
		out = append(out, "\r\n"...)
		subs[j] = c.newReq(srv, out, replyValues)
	}
	// Keys are copied: the merge runs after the request buffer moved on.
	keys := make([][]byte, len(req.Keys))
	for i, k := range req.Keys {
		keys[i] = bytes.Clone(k)
	}
	c.slots = append(c.slots, slot{subs: subs, pos: pos, merge: func(dst []byte, s *slot) []byte {
		return mergeValues(dst, s, keys)
	}})
}

// mergeValues answers a split get: the VALUE blocks in the order of the
// requested keys, then END; a failed server's error replaces it all.
func mergeValues(dst []byte, s *slot, keys [][]byte) []byte {
	parts := make([][]memcache.Value, len(s.subs))
	for j, r := range s.subs {
		vals, ok := memcache.SplitValues(r.reply, nil)
		if r.failed || !ok {
			return append(dst, r.reply...)
		}
		parts[j] = vals
	}
	used := make([][]bool, len(parts))
	for j := range parts {
		used[j] = make([]bool, len(parts[j]))
	}
	for i, k := range keys {
		j := s.pos[i]
		for v := range parts[j] {
			if !used[j][v] && bytes.Equal(parts[j][v].Key, k) {
				used[j][v] = true
				dst = append(dst, parts[j][v].Raw...)
				break
			}
		}
	}
	return append(dst, "END\r\n"...)
}
