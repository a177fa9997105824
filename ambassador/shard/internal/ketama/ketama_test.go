package ketama

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/resp"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestHashesAgainstStdlib(t *testing.T) {
	for _, k := range []string{"", "a", "foo", "key:000000012345", "the quick brown fox"} {
		key := []byte(k)
		h32a, h32, h64 := fnv.New32a(), fnv.New32(), fnv.New64()
		h32a.Write(key)
		h32.Write(key)
		h64.Write(key)
		if got, want := FNV1a_32(key), h32a.Sum32(); got != want {
			t.Errorf("fnv1a_32(%q) = %#x, want %#x", k, got, want)
		}
		if got, want := FNV1_32(key), h32.Sum32(); got != want {
			t.Errorf("fnv1_32(%q) = %#x, want %#x", k, got, want)
		}
		if got, want := FNV1_64(key), uint32(h64.Sum64()); got != want {
			t.Errorf("fnv1_64(%q) = %#x, want %#x", k, got, want)
		}
		if got, want := CRC32a(key), crc32.ChecksumIEEE(key); got != want {
			t.Errorf("crc32a(%q) = %#x, want %#x", k, got, want)
		}
		if CRC32(key) > 0x7fff {
			t.Errorf("crc32(%q) = %#x is more than 15 bits", k, CRC32(key))
		}
	}
	// Known values of the reference algorithms.
	tests := []struct {
		name string
		fn   HashFunc
		key  string
		want uint32
	}{
		{"crc16 low bits (CRC-16/XMODEM check)", func(k []byte) uint32 { return CRC16(k) & 0xffff }, "123456789", 0x31c3},
		{"jenkins empty", Jenkins, "", 0xdeadbeef + 13},
		{"hsieh empty", Hsieh, "", 0},
		{"fnv1a_64 empty", FNV1a_64, "", 0x84222325},
		{"md5 empty", MD5, "", 0xd98c1dd4},
	}
	for _, tt := range tests {
		if got := tt.fn([]byte(tt.key)); got != tt.want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

func TestHashByName(t *testing.T) {
	for _, n := range HashNames() {
		if _, err := Hash(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := Hash("sha1"); err == nil || !strings.Contains(err.Error(), "fnv1a_64") {
		t.Errorf("unknown hash: %v", err)
	}
	if _, err := NewRing("consistent", []Server{{"a", 1}}, nil); err == nil {
		t.Error("unknown distribution accepted")
	}
	if _, err := NewRing(Ketama, []Server{{"a", 0}}, nil); err == nil {
		t.Error("zero weight accepted")
	}
}

func TestServerName(t *testing.T) {
	tests := []struct{ host, port, name, want string }{
		{"10.0.0.1", "6379", "", "10.0.0.1:6379"},
		{"10.0.0.1", "11211", "", "10.0.0.1"},
		{"10.0.0.1", "11211", "cache-1", "cache-1"},
		{"redis-0", "6379", "shard0", "shard0"},
	}
	for _, tt := range tests {
		if got := ServerName(tt.host, tt.port, tt.name); got != tt.want {
			t.Errorf("ServerName(%q, %q, %q) = %q, want %q", tt.host, tt.port, tt.name, got, tt.want)
		}
	}
}

func TestKetamaPoints(t *testing.T) {
	r, err := NewRing(Ketama, []Server{{"a:1", 1}, {"b:1", 1}, {"c:1", 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.points) != 3*160 {
		t.Fatalf("%d points, want 480", len(r.points))
	}
	r, _ = NewRing(Ketama, []Server{{"a:1", 1}, {"b:1", 2}, {"c:1", 3}}, nil)
	count := map[int32]int{}
	for _, p := range r.points {
		count[p.index]++
	}
	// pct*40*3 floored, times 4: 1/6 -> 80, 2/6 -> 160, 3/6 -> 240.
	if count[0] != 80 || count[1] != 160 || count[2] != 240 {
		t.Fatalf("points by weight: %v", count)
	}
	r, _ = NewRing(Ketama, []Server{{"a:1", 1}, {"b:1", 1}}, []bool{true, false})
	for i := range uint32(1000) {
		if r.Pick(i*4294967) != 0 {
			t.Fatal("ejected server picked")
		}
	}
	r, _ = NewRing(Ketama, []Server{{"a:1", 1}}, []bool{false})
	if r.Pick(1) != -1 {
		t.Fatal("no live server: want -1")
	}
}

func TestHashTag(t *testing.T) {
	tests := []struct{ key, tag, want string }{
		{"user:{42}:name", "{}", "42"},
		{"user:{}:name", "{}", "user:{}:name"},
		{"{a}{b}", "{}", "a"},
		{"no-tag", "{}", "no-tag"},
		{"open{only", "{}", "open{only"},
		{"x$y$z", "$$", "y"},
		{"anything", "", "anything"},
	}
	for _, tt := range tests {
		if got := string(HashTag([]byte(tt.key), tt.tag)); got != tt.want {
			t.Errorf("HashTag(%q, %q) = %q, want %q", tt.key, tt.tag, got, tt.want)
		}
	}
}

func TestSortServers(t *testing.T) {
	s := []Server{{"127.0.0.1:7000", 1}, {"b", 1}, {"127.0.0.1:600", 1}, {"a", 1}}
	SortServers(s)
	var got []string
	for _, x := range s {
		got = append(got, x.Name)
	}
	if want := "a b 127.0.0.1:600 127.0.0.1:7000"; strings.Join(got, " ") != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// TestNutcrackerDifferential writes keys through the real nutcracker
// (twemproxy) and checks that every key landed on the server this
// package picks, for every hash, both deterministic distributions,
// weights, named servers and hash tags.
func TestNutcrackerDifferential(t *testing.T) {
	addrs := []string{testdeps.StartRedis(t), testdeps.StartRedis(t), testdeps.StartRedis(t)}
	if testdeps.Binary(t, "nutcracker") == "" {
		return
	}
	type combo struct {
		hash, dist string
		weights    [3]int
		names      bool
		tag        string
	}
	var combos []combo
	for _, h := range HashNames() {
		combos = append(combos, combo{h, Ketama, [3]int{1, 1, 1}, false, ""})
		combos = append(combos, combo{h, Modula, [3]int{1, 1, 1}, false, ""})
	}
	combos = append(combos,
		combo{"fnv1a_64", Ketama, [3]int{1, 2, 3}, false, "{}"},
		combo{"murmur", Ketama, [3]int{5, 1, 2}, true, ""},
		combo{"md5", Modula, [3]int{3, 1, 2}, true, "$$"},
		combo{"crc32a", Ketama, [3]int{1, 1, 1}, true, "{}"},
	)
	for ci, c := range combos {
		t.Run(fmt.Sprintf("%s/%s/w%v/names=%v/tag=%q", c.hash, c.dist, c.weights, c.names, c.tag), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(ci), 2))
			// Servers listed in an order that is not twemproxy's sorted order.
			var conf strings.Builder
			fmt.Fprintf(&conf, "pool:\n  listen: 127.0.0.1:%s\n  redis: true\n  hash: %s\n  distribution: %s\n", testdeps.PortPlaceholder, c.hash, c.dist)
			if c.tag != "" {
				fmt.Fprintf(&conf, "  hash_tag: %q\n", c.tag)
			}
			conf.WriteString("  servers:\n")
			var servers []Server
			byName := map[string]string{}
			for i := 2; i >= 0; i-- {
				host, port, _ := net.SplitHostPort(addrs[i])
				name := ""
				if c.names {
					name = fmt.Sprintf("shard-%d", 9-i)
				}
				fmt.Fprintf(&conf, "   - %s:%d %s\n", addrs[i], c.weights[i], name)
				n := ServerName(host, port, name)
				servers = append(servers, Server{n, uint32(c.weights[i])})
				byName[n] = addrs[i]
			}
			SortServers(servers)
			ring, err := NewRing(c.dist, servers, nil)
			if err != nil {
				t.Fatal(err)
			}
			hash, _ := Hash(c.hash)
			proxy, _ := testdeps.StartNutcracker(t, conf.String())

			prefix := fmt.Sprintf("c%d:", ci)
			var keys []string
			for i := range 1500 {
				k := fmt.Sprintf("%skey:%d", prefix, i)
				switch i % 5 {
				case 1: // bytes >= 0x80 exercise the signed-char quirks
					b := make([]byte, 1+rng.IntN(20))
					for j := range b {
						b[j] = byte(rng.IntN(256))
					}
					k = prefix + string(b)
				case 2:
					k = fmt.Sprintf("%suser:{%d}:profile", prefix, i%37)
				case 3:
					k = fmt.Sprintf("%s$%d$x", prefix, i%11)
				}
				keys = append(keys, k)
			}
			var cmds []byte
			for _, k := range keys {
				cmds = resp.AppendCommand(cmds, []byte("SET"), []byte(k), []byte("1"))
			}
			replies := roundTrip(t, proxy, cmds, len(keys))
			for i, r := range replies {
				if string(r) != "+OK\r\n" {
					t.Fatalf("SET %q through nutcracker: %q", keys[i], r)
				}
			}
			where := map[string]string{}
			for _, a := range addrs {
				reply := roundTrip(t, a, resp.AppendCommand(nil, []byte("KEYS"), []byte(prefix+"*")), 1)[0]
				elems, ok := resp.ArrayElems(reply, nil)
				if !ok {
					t.Fatalf("KEYS: %q", reply)
				}
				for _, e := range elems {
					k := string(e[bytes.Index(e, []byte("\r\n"))+2 : len(e)-2])
					where[k] = a
				}
			}
			bad := 0
			for _, k := range keys {
				idx := ring.Pick(hash(HashTag([]byte(k), c.tag)))
				if got, want := where[k], byName[servers[idx].Name]; got != want {
					if bad++; bad <= 5 {
						t.Errorf("key %q: nutcracker put it on %s, ketama picks %s", k, got, want)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d keys differ", bad, len(keys))
			}
		})
	}
}

// roundTrip sends cmds to addr and reads n replies.
func roundTrip(t *testing.T, addr string, cmds []byte, n int) [][]byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go c.Write(cmds)
	r := resp.NewReader(bufio.NewReader(c), 4096, resp.DefaultLimits)
	out := make([][]byte, n)
	for i := range out {
		raw, err := r.ReadReply()
		if err != nil {
			t.Fatalf("reply %d of %d from %s: %v", i, n, addr, err)
		}
		out[i] = bytes.Clone(raw)
	}
	return out
}
