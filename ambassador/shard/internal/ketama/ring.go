package ketama

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Distribution names, as twemproxy spells them.
const (
	Ketama = "ketama"
	Modula = "modula"
	Random = "random"
)

// Distributions lists the distribution names twemproxy accepts.
func Distributions() []string { return []string{Ketama, Modula, Random} }

// Server is one server of a pool as the distribution sees it.
type Server struct {
	// Name is what ketama hashes: the configured name, or "host:port"
	// ("host" alone when the port is 11211); see ServerName.
	Name   string
	Weight uint32
}

// ServerName is the name twemproxy gives a server written
// "host:port:weight [name]": name when given, else "host:port", except
// that the port is left out when it is 11211 (libmemcached's default, kept
// by twemproxy for compatibility).
func ServerName(host, port, name string) string {
	if name != "" {
		return name
	}
	if p, err := strconv.Atoi(port); err == nil && p == 11211 {
		return host
	}
	return host + ":" + port
}

// pointsPerServer is ketama's number of points per server at equal weight:
// 40 MD5 digests of 4 points each.
const pointsPerServer = 160

type point struct {
	value uint32
	index int32
}

// Ring maps a key hash to a server index for one distribution over a
// fixed list of servers, of which some may be left out (ejected).
// A Ring is immutable and safe for concurrent use.
type Ring struct {
	dist   string
	points []point // ketama: sorted points; modula/random: one slot per unit of weight / per server
	live   int
}

// NewRing builds the distribution dist over servers. live[i] false leaves
// server i out (twemproxy's auto_eject_hosts); a nil live keeps them all.
// Indexes returned by Pick refer to servers.
func NewRing(dist string, servers []Server, live []bool) (*Ring, error) {
	isLive := func(i int) bool { return live == nil || live[i] }
	r := &Ring{dist: dist}
	var total uint32
	for i, s := range servers {
		if s.Weight == 0 {
			return nil, fmt.Errorf("server %q: weight must be at least 1", s.Name)
		}
		if isLive(i) {
			r.live++
			total += s.Weight
		}
	}
	switch dist {
	case Ketama:
		for i, s := range servers {
			if !isLive(i) {
				continue
			}
			for k := range ketamaPoints(s.Weight, total, r.live) / 4 {
				sum := md5.Sum([]byte(s.Name + "-" + strconv.FormatUint(uint64(k), 10)))
				for x := range 4 {
					r.points = append(r.points, point{binary.LittleEndian.Uint32(sum[x*4:]), int32(i)})
				}
			}
		}
		slices.SortStableFunc(r.points, func(a, b point) int {
			switch {
			case a.value < b.value:
				return -1
			case a.value > b.value:
				return 1
			}
			return 0
		})
	case Modula:
		for i, s := range servers {
			if !isLive(i) {
				continue
			}
			for range s.Weight {
				r.points = append(r.points, point{0, int32(i)})
			}
		}
	case Random:
		for i := range servers {
			if isLive(i) {
				r.points = append(r.points, point{0, int32(i)})
			}
		}
	default:
		return nil, fmt.Errorf("unknown distribution %q (want ketama, modula or random)", dist)
	}
	return r, nil
}

// ketamaPoints is twemproxy's points-per-server computation, in float32
// as the C code does it, including its rounding.
func ketamaPoints(weight, total uint32, nlive int) uint32 {
	pct := float32(weight) / float32(total)
	v := pct * pointsPerServer
	v = v / 4
	v = v * float32(nlive)
	f := float32(float64(v) + 0.0000000001)
	return uint32(float32(math.Floor(float64(f)))) * 4
}

// Live is the number of servers on the ring.
func (r *Ring) Live() int { return r.live }

// Pick returns the index of the server for a key hash, or -1 when no
// server is live.
func (r *Ring) Pick(hash uint32) int {
	n := len(r.points)
	if n == 0 {
		return -1
	}
	switch r.dist {
	case Ketama:
		lo, hi := 0, n
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if r.points[mid].value < hash {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo == n {
			lo = 0
		}
		return int(r.points[lo].index)
	case Modula:
		return int(r.points[hash%uint32(n)].index)
	default:
		return int(r.points[rand.IntN(n)].index)
	}
}
