// Package child starts and stops child processes the way podkit's
// components run them (await's command, the worker's per-item command,
// config-sync's --validate-cmd, the demo's servers): optionally in a
// process group of their own, so a signal reaches what they fork; killed
// by the kernel when podkit dies, where the platform allows it (Linux's
// parent-death signal; elsewhere a child outlives a podkit that is killed
// with SIGKILL); with the tail of their output kept for error messages
// (Tail).
//
// The package is for Unix systems (Linux, macOS, the BSDs).
package child
