//go:build !linux

package shard

import "testing"

// checkDataPath: the goroutine path has nothing to check.
func checkDataPath(testing.TB, *Proxy, Config) {}
