package shard

import "strings"

// cmdClass says how a Redis command is routed.
type cmdClass uint8

const (
	cmdUnknown     cmdClass = iota
	cmdKey                  // the key is the first argument
	cmdKeyAt2               // the key is the second argument (XGROUP CREATE key, OBJECT ENCODING key, ...)
	cmdAllKeys              // every argument is a key; all must be on one server
	cmdKeys2                // the first two arguments are keys (RENAME, SMOVE, LMOVE, ...); one server
	cmdNumKeys              // numkeys at argument 2, keys follow (EVAL, ZUNIONSTORE dest numkeys ...)
	cmdMGET                 // fan-out, merged
	cmdMSET                 // fan-out, merged
	cmdSum                  // fan-out, integer replies summed (DEL, UNLINK, EXISTS, TOUCH)
	cmdLocal                // answered by the proxy
	cmdTx                   // MULTI, EXEC, DISCARD: a transaction on one server
	cmdUnshardable          // refused with a clear error
)

type cmdInfo struct {
	class   cmdClass
	minArgs int // including the command name
	why     string
	numAt   int  // cmdNumKeys: index of the numkeys argument
	dest    bool // cmdNumKeys: argument 1 is a key too
}

var commands = map[string]cmdInfo{}

func reg(class cmdClass, minArgs int, names string) {
	for _, n := range strings.Fields(names) {
		commands[n] = cmdInfo{class: class, minArgs: minArgs}
	}
}

func refuse(why, names string) {
	for _, n := range strings.Fields(names) {
		commands[n] = cmdInfo{class: cmdUnshardable, why: why}
	}
}

func init() {
	reg(cmdKey, 2, `GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND STRLEN GETRANGE SUBSTR SETRANGE
		INCR DECR INCRBY DECRBY INCRBYFLOAT GETBIT SETBIT BITCOUNT BITPOS BITFIELD BITFIELD_RO
		EXPIRE PEXPIRE EXPIREAT PEXPIREAT PERSIST TTL PTTL EXPIRETIME PEXPIRETIME TYPE DUMP RESTORE SORT SORT_RO
		HSET HSETNX HGET HMSET HMGET HDEL HLEN HSTRLEN HEXISTS HKEYS HVALS HGETALL HINCRBY HINCRBYFLOAT HSCAN HRANDFIELD
		LPUSH LPUSHX RPUSH RPUSHX LPOP RPOP LLEN LINDEX LSET LRANGE LTRIM LREM LINSERT LPOS
		SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SPOP SRANDMEMBER SSCAN
		ZADD ZINCRBY ZREM ZCARD ZCOUNT ZLEXCOUNT ZSCORE ZMSCORE ZRANK ZREVRANK ZRANGE ZRANGEBYSCORE ZRANGEBYLEX
		ZREVRANGE ZREVRANGEBYSCORE ZREVRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREMRANGEBYLEX ZPOPMIN ZPOPMAX
		ZSCAN ZRANDMEMBER
		PFADD GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER GEORADIUS_RO GEORADIUSBYMEMBER_RO GEOSEARCH
		XADD XLEN XRANGE XREVRANGE XDEL XTRIM XACK XPENDING XCLAIM XAUTOCLAIM XSETID`)
	reg(cmdKeyAt2, 3, `XGROUP XINFO OBJECT MEMORY`)
	reg(cmdAllKeys, 2, `SDIFF SINTER SUNION SDIFFSTORE SINTERSTORE SUNIONSTORE PFCOUNT PFMERGE`)
	reg(cmdKeys2, 3, `RENAME RENAMENX RPOPLPUSH LMOVE SMOVE COPY LCS GEOSEARCHSTORE ZRANGESTORE`)
	numKeys(2, false, `EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO`)
	numKeys(2, true, `ZUNIONSTORE ZINTERSTORE ZDIFFSTORE`)
	numKeys(1, false, `LMPOP ZMPOP ZUNION ZINTER ZDIFF SINTERCARD`)
	reg(cmdMGET, 2, `MGET`)
	reg(cmdMSET, 3, `MSET`)
	reg(cmdSum, 2, `DEL UNLINK EXISTS TOUCH`)
	reg(cmdLocal, 1, `PING ECHO QUIT COMMAND AUTH SELECT HELLO`)
	refuse("it would see only one server's keys", `KEYS SCAN RANDOMKEY DBSIZE FLUSHALL FLUSHDB SWAPDB MOVE WAIT WAITAOF`)
	refuse("it sets all its keys or none, which cannot be guaranteed across servers; use MSET, or a Lua script over keys in one hash tag", `MSETNX`)
	reg(cmdTx, 1, `MULTI EXEC DISCARD`)
	refuse("WATCH needs a server connection of its own, and podkit shard shares them; use MULTI/EXEC with keys in one hash tag, or a Lua script", `WATCH UNWATCH`)
	refuse("blocking commands would hold a server connection shared by other clients",
		`BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP BZPOPMIN BZPOPMAX BZMPOP XREAD XREADGROUP`)
	refuse("pub/sub needs a dedicated connection",
		`SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE PUBLISH SPUBLISH PUBSUB MONITOR`)
	refuse("it addresses one server, not the pool",
		`INFO CONFIG CLIENT CLUSTER DEBUG SHUTDOWN SAVE BGSAVE BGREWRITEAOF LASTSAVE SLAVEOF REPLICAOF ROLE SYNC PSYNC
		SCRIPT FUNCTION ACL LATENCY SLOWLOG TIME LOLWUT MIGRATE READONLY READWRITE RESET FAILOVER MODULE
`)
}

func numKeys(at int, dest bool, names string) {
	for _, n := range strings.Fields(names) {
		commands[n] = cmdInfo{class: cmdNumKeys, minArgs: at + 1, numAt: at, dest: dest}
	}
}

// lookup finds a command by name, case-insensitively, without allocating.
func lookup(name []byte) (cmdInfo, bool) {
	var buf [24]byte
	if len(name) > len(buf) {
		return cmdInfo{}, false
	}
	for i, c := range name {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	ci, ok := commands[string(buf[:len(name)])]
	return ci, ok
}
