// Package lint holds repository-wide checks that run as tests: every
// package in the module has a doc comment.
package lint
