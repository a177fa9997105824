// Package dirwatch tells its caller that something changed in a set of
// directories (inotify on Linux; elsewhere nothing, and the caller's poll
// does the work). It backs the container contract's reload watcher and
// discovery's file source.
package dirwatch
