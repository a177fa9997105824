package tlsproxy

import (
	"crypto/tls"
	"encoding/binary"
	"net"
)

// PROXY protocol version 2 (haproxy's proxy-protocol.txt, section 2.2).
var proxySig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	pp2VersionProxy = 0x21 // version 2, PROXY command
	pp2VersionLocal = 0x20 // version 2, LOCAL command
	pp2TCP4         = 0x11
	pp2TCP6         = 0x21

	pp2TypeALPN      = 0x01
	pp2TypeAuthority = 0x02
	pp2TypeSSL       = 0x20
	pp2SubVersion    = 0x21
	pp2SubCN         = 0x22
	pp2SubCipher     = 0x23

	pp2ClientSSL      = 0x01
	pp2ClientCertConn = 0x02
	pp2ClientCertSess = 0x04
)

// proxyHeaderV2 builds the PROXY v2 header for a client connection from
// src to dst, with TLVs for ALPN, SNI (authority) and TLS details
// (version, cipher, verified client CN).
func proxyHeaderV2(src, dst net.Addr, st *tls.ConnectionState) []byte {
	b := make([]byte, 0, 16+36+128)
	b = append(b, proxySig...)
	sa, sok := src.(*net.TCPAddr)
	da, dok := dst.(*net.TCPAddr)
	if !sok || !dok {
		// Not TCP (cannot happen for a TCP listener): LOCAL, no addresses.
		return proxyHeaderLocal()
	}
	b = append(b, pp2VersionProxy)
	s4, d4 := sa.IP.To4(), da.IP.To4()
	var addrs []byte
	if s4 != nil && d4 != nil {
		b = append(b, pp2TCP4)
		addrs = append(append(addrs, s4...), d4...)
	} else {
		b = append(b, pp2TCP6)
		addrs = append(append(addrs, sa.IP.To16()...), da.IP.To16()...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, uint16(sa.Port))
	addrs = binary.BigEndian.AppendUint16(addrs, uint16(da.Port))

	var tlvs []byte
	if st != nil {
		if st.NegotiatedProtocol != "" {
			tlvs = appendTLV(tlvs, pp2TypeALPN, []byte(st.NegotiatedProtocol))
		}
		if st.ServerName != "" {
			tlvs = appendTLV(tlvs, pp2TypeAuthority, []byte(st.ServerName))
		}
		ssl := []byte{pp2ClientSSL, 0, 0, 0, 0} // client bits, verify (0 = ok)
		if len(st.PeerCertificates) > 0 {
			ssl[0] |= pp2ClientCertConn
			if st.DidResume {
				ssl[0] |= pp2ClientCertSess
			}
			if len(st.VerifiedChains) == 0 {
				binary.BigEndian.PutUint32(ssl[1:], 1)
			}
		}
		ssl = appendTLV(ssl, pp2SubVersion, []byte(tlsVersionName(st.Version)))
		if cn := st.PeerCertificates; len(cn) > 0 && cn[0].Subject.CommonName != "" {
			ssl = appendTLV(ssl, pp2SubCN, []byte(cn[0].Subject.CommonName))
		}
		ssl = appendTLV(ssl, pp2SubCipher, []byte(tls.CipherSuiteName(st.CipherSuite)))
		tlvs = appendTLV(tlvs, pp2TypeSSL, ssl)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)+len(tlvs)))
	b = append(b, addrs...)
	return append(b, tlvs...)
}

// proxyHeaderLocal is a v2 header with the LOCAL command: a connection
// made by the proxy itself (health checks), with no addresses.
func proxyHeaderLocal() []byte {
	return append(append([]byte(nil), proxySig...), pp2VersionLocal, 0, 0, 0)
}

func appendTLV(b []byte, typ byte, v []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// tlsVersionName names a TLS version the way haproxy does ("TLSv1.3").
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}
