//go:build !linux

package shard

import (
	"io"
	"net"
)

func newSock(nc net.Conn) io.ReadWriter { return nc }
