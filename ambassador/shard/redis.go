package shard

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"

	"github.com/podkit/podkit/internal/resp"
)

// redisClient serves one Redis client connection.
type redisClient struct {
	*client
	rd     *resp.Reader
	authed bool
	tmp    []*server
	tx     tx
}

// tx is a transaction being queued by the client. Nothing reaches a
// server before EXEC, which sends MULTI, the queued commands and EXEC in
// one request to the one server all their keys hash to.
type tx struct {
	on      bool
	aborted bool    // a command was refused: EXEC answers EXECABORT
	srv     *server // where the keys so far hash to
	buf     []byte  // MULTI and the queued commands
	n       int
}

// readError answers a protocol error before the connection closes.
func (c *redisClient) readError(err error) {
	if errors.Is(err, resp.ErrProtocol) || errors.Is(err, resp.ErrTooLarge) {
		msg := err.Error()
		if errors.Is(err, resp.ErrTooLarge) {
			msg = "Protocol error: " + msg + " (--max-bulk)"
		} else {
			msg = "Protocol error: " + msg[len("protocol error: "):]
		}
		c.writeFinal(resp.AppendError(nil, "ERR "+msg))
	}
}

func (c *redisClient) errorf(format string, a ...any) {
	c.addLocal(resp.AppendError(nil, fmt.Sprintf(format, a...)))
}

func (c *redisClient) handle(pl *pool, args [][]byte, raw []byte) {
	name := args[0]
	ci, ok := lookup(name)
	if !ok {
		c.tx.aborted = c.tx.on
		c.errorf("ERR unknown command '%s' (podkit shard forwards only commands it can shard)", clip(name))
		return
	}
	if pl.cfg.RedisAuth != "" && !c.authed {
		if ci.class != cmdLocal || !(eqFold(name, "AUTH") || eqFold(name, "HELLO") || eqFold(name, "QUIT")) {
			c.addLocal([]byte("-NOAUTH Authentication required.\r\n"))
			return
		}
	}
	if len(args) < ci.minArgs {
		c.tx.aborted = c.tx.on
		c.errorf("ERR wrong number of arguments for '%s' command", bytes.ToLower(name))
		return
	}
	if ci.class == cmdTx {
		c.txCommand(pl, name)
		return
	}
	if c.tx.on && !eqFold(name, "QUIT") {
		c.txQueue(pl, name, ci, args, raw)
		return
	}
	switch ci.class {
	case cmdKey:
		c.single(pl, args[1], raw)
	case cmdKeyAt2:
		c.single(pl, args[2], raw)
	case cmdAllKeys:
		c.sameServer(pl, name, args[1:], raw)
	case cmdKeys2:
		c.sameServer(pl, name, args[1:3], raw)
	case cmdNumKeys:
		n, err := strconv.Atoi(string(args[ci.numAt]))
		if err != nil || n < 0 || ci.numAt+1+n > len(args) {
			c.errorf("ERR numkeys of '%s' is not a valid number of keys", bytes.ToLower(name))
			return
		}
		keys := args[ci.numAt+1 : ci.numAt+1+n]
		if ci.dest {
			keys = append([][]byte{args[1]}, keys...)
		}
		if len(keys) == 0 {
			c.errorf("ERR podkit shard: %s without keys cannot be routed to a server", bytes.ToUpper(name))
			return
		}
		c.sameServer(pl, name, keys, raw)
	case cmdMGET:
		c.fanout(pl, args, raw, 1, mergeMGET)
	case cmdMSET:
		if len(args)%2 != 1 {
			c.errorf("ERR wrong number of arguments for 'mset' command")
			return
		}
		c.fanout(pl, args, raw, 2, mergeMSET)
	case cmdSum:
		c.fanout(pl, args, raw, 1, mergeSum)
	case cmdLocal:
		c.local1(pl, args)
	case cmdUnshardable:
		c.errorf("ERR podkit shard: %s is not supported: %s", bytes.ToUpper(name), ci.why)
	}
}

// txCommand answers MULTI, EXEC and DISCARD.
func (c *redisClient) txCommand(pl *pool, name []byte) {
	switch {
	case eqFold(name, "MULTI"):
		if c.tx.on {
			c.errorf("ERR MULTI calls can not be nested")
			return
		}
		c.tx = tx{on: true, buf: resp.AppendCommand(nil, []byte("MULTI"))}
		c.addLocal([]byte("+OK\r\n"))
	case eqFold(name, "DISCARD"):
		if !c.tx.on {
			c.errorf("ERR DISCARD without MULTI")
			return
		}
		c.tx = tx{}
		c.addLocal([]byte("+OK\r\n"))
	default: // EXEC
		t := c.tx
		c.tx = tx{}
		switch {
		case !t.on:
			c.errorf("ERR EXEC without MULTI")
		case t.aborted:
			c.addLocal([]byte("-EXECABORT Transaction discarded because of previous errors.\r\n"))
		case t.n == 0:
			c.addLocal([]byte("*0\r\n"))
		case t.srv.retired.Load():
			c.errorf("ERR podkit shard: server %s was removed from the pool by a reload while the transaction was queued; transaction discarded", t.srv.cfg.Name)
		case pl.cfg.FailClosed && t.srv.down.Load():
			c.addLocal(t.srv.downReply(Redis))
		default:
			out := resp.AppendCommand(t.buf, []byte("EXEC"))
			r := c.newReq(t.srv, out, replyRESP)
			r.count = t.n + 2
			c.slots = append(c.slots, slot{subs: []*request{r}, merge: mergeExec})
		}
	}
}

// mergeExec answers EXEC with the server's reply to it, the last of the
// transaction's replies (those to MULTI and the queued commands come
// first).
func mergeExec(dst []byte, s *slot) []byte {
	r := s.subs[0]
	if r.failed {
		return append(dst, r.reply...)
	}
	return append(dst, resp.LastValue(r.reply)...)
}

// txQueue queues a command of a transaction, answering QUEUED, once its
// keys are known to hash to the transaction's server.
func (c *redisClient) txQueue(pl *pool, name []byte, ci cmdInfo, args [][]byte, raw []byte) {
	refuse := func(format string, a ...any) {
		c.tx.aborted = true
		c.errorf(format, a...)
	}
	var keys [][]byte
	step := 1
	switch ci.class {
	case cmdKey:
		keys = args[1:2]
	case cmdKeyAt2:
		keys = args[2:3]
	case cmdAllKeys, cmdMGET, cmdSum:
		keys = args[1:]
	case cmdKeys2:
		keys = args[1:3]
	case cmdMSET:
		if len(args)%2 != 1 {
			refuse("ERR wrong number of arguments for 'mset' command")
			return
		}
		keys, step = args[1:], 2
	case cmdNumKeys:
		n, err := strconv.Atoi(string(args[ci.numAt]))
		if err != nil || n < 1 || ci.numAt+1+n > len(args) {
			refuse("ERR numkeys of '%s' is not a valid number of keys", bytes.ToLower(name))
			return
		}
		keys = args[ci.numAt+1 : ci.numAt+1+n]
		if ci.dest {
			keys = append([][]byte{args[1]}, keys...)
		}
	default:
		refuse("ERR podkit shard: %s inside MULTI is not supported: only commands with keys, all on one server, can be queued", bytes.ToUpper(name))
		return
	}
	for i := 0; i < len(keys); i += step {
		srv := pl.pick(keys[i])
		if srv == nil {
			refuse("ERR podkit shard: pool %s has no live servers", pl.cfg.Name)
			return
		}
		if c.tx.srv == nil {
			c.tx.srv = srv
		}
		if srv != c.tx.srv {
			hint := "configure a hash_tag such as \"{}\" and put the shared part of the keys in it"
			if pl.cfg.HashTag != "" {
				hint = fmt.Sprintf("put the shared part of the keys in the hash tag, e.g. %c...%c", pl.cfg.HashTag[0], pl.cfg.HashTag[1])
			}
			refuse("ERR podkit shard: the keys of a transaction must all be on one server; %s", hint)
			return
		}
	}
	if len(c.tx.buf)+len(raw) > c.px.limits.maxBulk {
		refuse("ERR podkit shard: transaction larger than %d bytes (--max-bulk)", c.px.limits.maxBulk)
		return
	}
	c.tx.buf = append(c.tx.buf, raw...)
	c.tx.n++
	c.addLocal([]byte("+QUEUED\r\n"))
}

// route returns the server for key, or adds an error slot and nil.
func (c *redisClient) route(pl *pool, key []byte) *server {
	srv := pl.pick(key)
	if srv == nil {
		c.errorf("ERR podkit shard: pool %s has no live servers", pl.cfg.Name)
		return nil
	}
	if pl.cfg.FailClosed && srv.down.Load() {
		c.addLocal(srv.downReply(Redis))
		return nil
	}
	return srv
}

func (c *redisClient) single(pl *pool, key, raw []byte) {
	srv := c.route(pl, key)
	if srv == nil {
		return
	}
	c.slots = append(c.slots, slot{req: c.newReq(srv, raw, replyRESP)})
}

// sameServer forwards a command whose keys must all be on one server.
func (c *redisClient) sameServer(pl *pool, name []byte, keys [][]byte, raw []byte) {
	first := pl.pick(keys[0])
	for _, k := range keys[1:] {
		if pl.pick(k) != first {
			hint := "configure a hash_tag such as \"{}\" and put the shared part of the keys in it"
			if pl.cfg.HashTag != "" {
				hint = fmt.Sprintf("put the shared part of the keys in the hash tag, e.g. %c...%c", pl.cfg.HashTag[0], pl.cfg.HashTag[1])
			}
			c.errorf("ERR podkit shard: %s keys are on different servers; %s", bytes.ToUpper(name), hint)
			return
		}
	}
	c.single(pl, keys[0], raw)
}

// fanout splits a multi-key command by server; step is 1 for keys, 2 for
// key-value pairs.
func (c *redisClient) fanout(pl *pool, args [][]byte, raw []byte, step int, merge func([]byte, *slot) []byte) {
	keys := args[1:]
	servers := c.tmp[:0]
	same := true
	for i := 0; i < len(keys); i += step {
		srv := c.route(pl, keys[i])
		if srv == nil {
			// route added an error slot for the whole command
			c.tmp = servers[:0]
			return
		}
		servers = append(servers, srv)
		same = same && srv == servers[0]
	}
	c.tmp = servers[:0]
	if same {
		c.slots = append(c.slots, slot{req: c.newReq(servers[0], raw, replyRESP)})
		return
	}
	var order []*server
	var counts []int
	pos := make([]int32, len(servers))
	for i, srv := range servers {
		j := 0
		for j < len(order) && order[j] != srv {
			j++
		}
		if j == len(order) {
			order = append(order, srv)
			counts = append(counts, 0)
		}
		pos[i] = int32(j)<<20 | int32(counts[j])
		counts[j]++
	}
	pl.counters.fragments.Add(uint64(len(order)))
	subs := make([]*request, len(order))
	for j, srv := range order {
		out := resp.AppendArray(make([]byte, 0, 64), 1+counts[j]*step)
		out = resp.AppendBulk(out, args[0])
		for i, s := range servers {
			if s == srv {
				for k := range step {
					out = resp.AppendBulk(out, keys[i*step+k])
				}
			}
		}
		subs[j] = c.newReq(srv, out, replyRESP)
	}
	c.slots = append(c.slots, slot{subs: subs, merge: merge, pos: pos})
}

// firstError returns the first sub-reply that is not what a merge
// expects (an error, or a server failure).
func firstError(s *slot, ok func([]byte) bool) []byte {
	for _, r := range s.subs {
		if r.failed || !ok(r.reply) {
			return r.reply
		}
	}
	return nil
}

func mergeMGET(dst []byte, s *slot) []byte {
	parts := make([][][]byte, len(s.subs))
	for j, r := range s.subs {
		elems, ok := resp.ArrayElems(r.reply, nil)
		if r.failed || !ok {
			if len(r.reply) > 0 && r.reply[0] == '-' {
				return append(dst, r.reply...)
			}
			return resp.AppendError(dst, "ERR podkit shard: unexpected MGET reply from a server")
		}
		parts[j] = elems
	}
	for _, p := range s.pos {
		if sub, i := p>>20, p&(1<<20-1); int(i) >= len(parts[sub]) {
			return resp.AppendError(dst, "ERR podkit shard: short MGET reply from a server")
		}
	}
	dst = resp.AppendArray(dst, len(s.pos))
	for _, p := range s.pos {
		dst = append(dst, parts[p>>20][p&(1<<20-1)]...)
	}
	return dst
}

func mergeMSET(dst []byte, s *slot) []byte {
	if e := firstError(s, func(b []byte) bool { return string(b) == "+OK\r\n" }); e != nil {
		return append(dst, e...)
	}
	return append(dst, "+OK\r\n"...)
}

func mergeSum(dst []byte, s *slot) []byte {
	var sum int64
	for _, r := range s.subs {
		n, ok := resp.ParseInt(r.reply)
		if r.failed || !ok {
			return append(dst, r.reply...)
		}
		sum += n
	}
	return resp.AppendInt(dst, sum)
}

// local1 answers the commands the proxy handles itself.
func (c *redisClient) local1(pl *pool, args [][]byte) {
	name := args[0]
	switch {
	case eqFold(name, "PING"):
		switch len(args) {
		case 1:
			c.addLocal([]byte("+PONG\r\n"))
		case 2:
			c.addLocal(resp.AppendBulk(nil, args[1]))
		default:
			c.errorf("ERR wrong number of arguments for 'ping' command")
		}
	case eqFold(name, "ECHO"):
		if len(args) != 2 {
			c.errorf("ERR wrong number of arguments for 'echo' command")
			return
		}
		c.addLocal(resp.AppendBulk(nil, args[1]))
	case eqFold(name, "QUIT"):
		c.addLocal([]byte("+OK\r\n"))
		c.slots[len(c.slots)-1].close = true
	case eqFold(name, "COMMAND"):
		if len(args) >= 2 && eqFold(args[1], "COUNT") {
			c.addLocal([]byte(":0\r\n"))
			return
		}
		c.addLocal([]byte("*0\r\n"))
	case eqFold(name, "SELECT"):
		if len(args) != 2 {
			c.errorf("ERR wrong number of arguments for 'select' command")
			return
		}
		if string(args[1]) != "0" {
			c.errorf("ERR podkit shard: SELECT %s is not supported; clients use database 0 (set redis_db in the pool to use another database on the servers)", clip(args[1]))
			return
		}
		c.addLocal([]byte("+OK\r\n"))
	case eqFold(name, "AUTH"):
		switch len(args) {
		case 2:
			c.auth(pl, nil, args[1])
		case 3:
			c.auth(pl, args[1], args[2])
		default:
			c.errorf("ERR wrong number of arguments for 'auth' command")
		}
	case eqFold(name, "HELLO"):
		c.hello(pl, args)
	}
}

func (c *redisClient) checkPassword(pl *pool, user, pass []byte) bool {
	if user != nil && string(user) != "default" {
		return false
	}
	return subtle.ConstantTimeCompare(pass, []byte(pl.cfg.RedisAuth)) == 1
}

func (c *redisClient) auth(pl *pool, user, pass []byte) {
	if pl.cfg.RedisAuth == "" {
		c.errorf("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	if !c.checkPassword(pl, user, pass) {
		c.authed = false
		c.addLocal([]byte("-WRONGPASS invalid username-password pair or user is disabled.\r\n"))
		return
	}
	c.authed = true
	c.addLocal([]byte("+OK\r\n"))
}

// hello negotiates the protocol. A RESP3 client's requests go over
// server connections opened with HELLO 3, so that the servers' RESP3
// replies (maps, sets, nulls, doubles) pass through unchanged.
func (c *redisClient) hello(pl *pool, args [][]byte) {
	proto := 2
	if c.resp3 {
		proto = 3
	}
	if len(args) >= 2 {
		switch string(args[1]) {
		case "2":
			proto = 2
		case "3":
			proto = 3
		default:
			c.addLocal([]byte("-NOPROTO unsupported protocol version\r\n"))
			return
		}
		for i := 2; i < len(args); i++ {
			switch {
			case eqFold(args[i], "AUTH") && i+2 < len(args):
				if pl.cfg.RedisAuth == "" || !c.checkPassword(pl, args[i+1], args[i+2]) {
					c.addLocal([]byte("-WRONGPASS invalid username-password pair or user is disabled.\r\n"))
					return
				}
				c.authed = true
				i += 2
			case eqFold(args[i], "SETNAME") && i+1 < len(args):
				i++
			default:
				c.errorf("ERR syntax error in HELLO option '%s'", clip(args[i]))
				return
			}
		}
	}
	if pl.cfg.RedisAuth != "" && !c.authed {
		c.addLocal([]byte("-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"))
		return
	}
	c.resp3 = proto == 3
	var b []byte
	if c.resp3 {
		b = append(b, "%7\r\n"...)
	} else {
		b = resp.AppendArray(b, 14)
	}
	for _, kv := range [][2]string{{"server", "podkit-shard"}, {"version", "7.0.0"}} {
		b = resp.AppendBulkString(b, kv[0])
		b = resp.AppendBulkString(b, kv[1])
	}
	b = resp.AppendBulkString(b, "proto")
	b = resp.AppendInt(b, int64(proto))
	b = resp.AppendBulkString(b, "id")
	b = resp.AppendInt(b, int64(c.id))
	b = resp.AppendBulkString(b, "mode")
	b = resp.AppendBulkString(b, "standalone")
	b = resp.AppendBulkString(b, "role")
	b = resp.AppendBulkString(b, "master")
	b = resp.AppendBulkString(b, "modules")
	b = resp.AppendArray(b, 0)
	c.addLocal(b)
}

func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// clip shortens and sanitises client input quoted in an error.
func clip(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}
