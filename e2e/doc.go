// Package e2e holds podkit's container tier: tests that build the podkit
// image and run components, and the examples, as real pods of containers on
// the Docker engine — shared network and PID namespaces, shared volumes,
// networks that are cut and joined again to make partitions, containers
// stopped to make node loss.
//
// The tests carry the build tag "container" so that `go test ./...` does not
// run them. Run them with
//
//	make e2e
//
// which builds the podkit image (make image) and the image of third-party
// servers (make peer-image), then runs
//
//	go test -tags container -count=1 ./e2e/...
//
// Containers are started through package containertest; they carry the
// label podkit.test=1 and are removed when their test ends. A missing Docker
// engine or image skips the tests, or fails them under PODKIT_REQUIRE_DEPS=1.
package e2e
