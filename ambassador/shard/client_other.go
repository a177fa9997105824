//go:build !linux

package shard

// initRaw leaves reply writing to the client goroutine.
func (c *client) initRaw() {}

func (c *client) waitReadable() {}
