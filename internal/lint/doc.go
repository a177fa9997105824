// Package lint holds repository-wide checks that run as tests: every
// package in the module has a doc comment, and no exported API of a
// non-internal package mentions a type from an internal package (which an
// importer could not name).
package lint
