// Package ketama implements twemproxy's key hashes and server distributions
// (ketama, modula, random) bit for bit, so that a pool configured the same
// way as a nutcracker pool sends every key to the same server.
//
// The hashes reproduce twemproxy's quirks on purpose: fnv1a_64 is computed
// in 32 bits, crc32 is libmemcached's 15-bit variant, and the fnv hashes
// read key bytes as C's signed char on x86, so bytes >= 0x80 are
// sign-extended before they are mixed in.
package ketama

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
)

// HashFunc hashes a key to 32 bits.
type HashFunc func(key []byte) uint32

// hashes are twemproxy's hash names, in twemproxy's order.
var hashes = []struct {
	name string
	fn   HashFunc
}{
	{"one_at_a_time", OneAtATime},
	{"md5", MD5},
	{"crc16", CRC16},
	{"crc32", CRC32},
	{"crc32a", CRC32a},
	{"fnv1_64", FNV1_64},
	{"fnv1a_64", FNV1a_64},
	{"fnv1_32", FNV1_32},
	{"fnv1a_32", FNV1a_32},
	{"hsieh", Hsieh},
	{"murmur", Murmur},
	{"jenkins", Jenkins},
}

// DefaultHash is twemproxy's default hash.
const DefaultHash = "fnv1a_64"

// HashNames lists the hash names twemproxy accepts.
func HashNames() []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = h.name
	}
	return out
}

// Hash returns the hash function called name (twemproxy's spelling).
func Hash(name string) (HashFunc, error) {
	for _, h := range hashes {
		if h.name == name {
			return h.fn, nil
		}
	}
	return nil, fmt.Errorf("unknown hash %q (want one of %s)", name, strings.Join(HashNames(), ", "))
}

// schar is a key byte as a C char on x86 (signed), widened to 32 bits.
func schar(b byte) uint32 { return uint32(int32(int8(b))) }

// OneAtATime is Jenkins' one-at-a-time hash (key bytes sign-extended).
func OneAtATime(key []byte) uint32 {
	var v uint32
	for _, b := range key {
		v += schar(b)
		v += v << 10
		v ^= v >> 6
	}
	v += v << 3
	v ^= v >> 11
	v += v << 15
	return v
}

// MD5 is the first four bytes of the key's MD5, little-endian.
func MD5(key []byte) uint32 {
	sum := md5.Sum(key)
	return binary.LittleEndian.Uint32(sum[:4])
}

var crc16tab = func() (t [256]uint32) {
	// CRC-16/XMODEM (polynomial 0x1021, MSB first).
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = uint32(c)
	}
	return t
}()

// CRC16 is twemproxy 0.5.0's crc16: the CRC-16/XMODEM table driven with a
// 32-bit register that is never masked to 16 bits, so bits above the CRC
// carry over. (twemproxy's development branch later switched to
// CRC-16/ARC; podkit follows the released nutcracker.)
func CRC16(key []byte) uint32 {
	var crc uint32
	for _, b := range key {
		crc = crc<<8 ^ crc16tab[(crc>>8^uint32(b))&0xff]
	}
	return crc
}

// CRC32 is libmemcached's crc32: bits 16..30 of the standard CRC-32.
func CRC32(key []byte) uint32 {
	return (crc32.ChecksumIEEE(key) >> 16) & 0x7fff
}

// CRC32a is the standard CRC-32 (IEEE).
func CRC32a(key []byte) uint32 { return crc32.ChecksumIEEE(key) }

const (
	fnv64Init  = 0xcbf29ce484222325
	fnv64Prime = 0x100000001b3
	fnv32Init  = 2166136261
	fnv32Prime = 16777619
)

// FNV1_64 is FNV-1 in 64 bits, truncated to 32.
func FNV1_64(key []byte) uint32 {
	h := uint64(fnv64Init)
	for _, b := range key {
		h *= fnv64Prime
		h ^= uint64(int64(int8(b)))
	}
	return uint32(h)
}

// FNV1a_64 is twemproxy's fnv1a_64: FNV-1a with the 64-bit constants
// truncated to 32 bits and computed in 32 bits.
func FNV1a_64(key []byte) uint32 {
	h := uint32(fnv64Init & 0xffffffff)
	for _, b := range key {
		h ^= schar(b)
		h *= uint32(fnv64Prime & 0xffffffff)
	}
	return h
}

// FNV1_32 is FNV-1 in 32 bits.
func FNV1_32(key []byte) uint32 {
	h := uint32(fnv32Init)
	for _, b := range key {
		h *= fnv32Prime
		h ^= schar(b)
	}
	return h
}

// FNV1a_32 is FNV-1a in 32 bits.
func FNV1a_32(key []byte) uint32 {
	h := uint32(fnv32Init)
	for _, b := range key {
		h ^= schar(b)
		h *= fnv32Prime
	}
	return h
}

func get16(b []byte) uint32 { return uint32(b[1])<<8 + uint32(b[0]) }

// Hsieh is Paul Hsieh's SuperFastHash.
func Hsieh(key []byte) uint32 {
	if len(key) == 0 {
		return 0
	}
	var h uint32
	rem := len(key) & 3
	for n := len(key) >> 2; n > 0; n-- {
		h += get16(key)
		tmp := get16(key[2:])<<11 ^ h
		h = h<<16 ^ tmp
		key = key[4:]
		h += h >> 11
	}
	switch rem {
	case 3:
		h += get16(key)
		h ^= h << 16
		h ^= schar(key[2]) << 18
		h += h >> 11
	case 2:
		h += get16(key)
		h ^= h << 11
		h += h >> 17
	case 1:
		h += uint32(key[0])
		h ^= h << 10
		h += h >> 1
	}
	h ^= h << 3
	h += h >> 5
	h ^= h << 4
	h += h >> 17
	h ^= h << 25
	h += h >> 6
	return h
}

// Murmur is MurmurHash2 with twemproxy's seed (0xdeadbeef * length).
func Murmur(key []byte) uint32 {
	const m = 0x5bd1e995
	n := uint32(len(key))
	h := (0xdeadbeef * n) ^ n
	for len(key) >= 4 {
		k := binary.LittleEndian.Uint32(key)
		k *= m
		k ^= k >> 24
		k *= m
		h *= m
		h ^= k
		key = key[4:]
	}
	switch len(key) {
	case 3:
		h ^= uint32(key[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(key[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(key[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

func rot(x uint32, k uint) uint32 { return x<<k | x>>(32-k) }

// Jenkins is Bob Jenkins' lookup3 hashlittle with initval 13, as twemproxy
// uses it on little-endian machines. Its three code paths (aligned words,
// aligned halves, bytes) give the same result, so the byte path is used.
func Jenkins(key []byte) uint32 {
	n := uint32(len(key))
	a := 0xdeadbeef + n + 13
	b, c := a, a
	for len(key) > 12 {
		a += binary.LittleEndian.Uint32(key)
		b += binary.LittleEndian.Uint32(key[4:])
		c += binary.LittleEndian.Uint32(key[8:])
		a -= c
		a ^= rot(c, 4)
		c += b
		b -= a
		b ^= rot(a, 6)
		a += c
		c -= b
		c ^= rot(b, 8)
		b += a
		a -= c
		a ^= rot(c, 16)
		c += b
		b -= a
		b ^= rot(a, 19)
		a += c
		c -= b
		c ^= rot(b, 4)
		b += a
		key = key[12:]
	}
	if len(key) == 0 {
		return c
	}
	var tail [12]byte
	copy(tail[:], key)
	a += binary.LittleEndian.Uint32(tail[0:])
	b += binary.LittleEndian.Uint32(tail[4:])
	c += binary.LittleEndian.Uint32(tail[8:])
	c ^= b
	c -= rot(b, 14)
	a ^= c
	a -= rot(c, 11)
	b ^= a
	b -= rot(a, 25)
	c ^= b
	c -= rot(b, 16)
	a ^= c
	a -= rot(c, 4)
	b ^= a
	b -= rot(a, 14)
	c ^= b
	c -= rot(b, 24)
	return c
}

// HashTag returns the part of key that is hashed when the pool has a
// two-character hash tag such as "{}": the bytes between the first tag[0]
// and the next tag[1] after it, when that part is not empty; otherwise the
// whole key. This is twemproxy's rule.
func HashTag(key []byte, tag string) []byte {
	if len(tag) != 2 {
		return key
	}
	for i, c := range key {
		if c != tag[0] {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == tag[1] {
				if j-i > 1 {
					return key[i+1 : j]
				}
				return key
			}
		}
		return key
	}
	return key
}

// compareNames orders server names as twemproxy's string_compare does:
// shorter first, then byte by byte.
func compareNames(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// SortServers puts servers in the order twemproxy keeps them in: sorted by
// name (shorter names first, then bytewise). The order decides which
// server a modula or random slot maps to.
func SortServers(s []Server) {
	sort.SliceStable(s, func(i, j int) bool { return compareNames(s[i].Name, s[j].Name) < 0 })
}
