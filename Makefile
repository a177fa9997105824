# podkit: one static binary, one image, one test command.
#
#   make            build bin/podkit
#   make test       tier 1: unit and in-process integration tests (first
#                   builds the kube-apiserver the tests run, once per machine)
#   make e2e        tier 2: the container tier (builds both images)
#   make lint       gofmt, go vet, staticcheck
#   make deps       install the Debian packages the tests need (as root)

GO        ?= go
PKG       := github.com/podkit/podkit
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED   ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# Evaluate once, not at every use.
VERSION   := $(VERSION)
COMMIT    := $(COMMIT)
CREATED   := $(CREATED)
LDFLAGS   := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION) -X $(PKG)/internal/buildinfo.Commit=$(COMMIT)

IMAGE      ?= podkit
PEER_IMAGE ?= podkit-peers:bookworm
CA_BUNDLE  ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_CTX  := .build/image

FUZZTIME  ?= 10s
FUZZ_PKGS ?= ./...
E2E_PKGS  ?= ./e2e/...
E2E_FLAGS ?= -timeout 45m

.PHONY: build test kube-apiserver e2e image peer-image bench lint fuzz demo deps clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/podkit ./cmd/podkit

# The Kubernetes tests (deploy, election) run a real kube-apiserver that
# internal/kubetest builds from source the first time on a machine (several
# minutes; cached under ~/.cache/podkit). Build it first, under a timeout of
# its own, so that no package's test timeout has to cover it.
test: kube-apiserver
	$(GO) test -race -shuffle=on ./...

KUBE_APISERVER_TIMEOUT ?= 40m

# -race, as make test builds: the packages compiled here are reused there.
kube-apiserver:
	@echo "building kube-apiserver for the tests (first time: several minutes; cached after)"
	$(GO) test -race -count=1 -timeout $(KUBE_APISERVER_TIMEOUT) -v -run '^TestBinary$$' ./internal/kubetest

# The container tier: the podkit image, the image of third-party servers,
# then the tests behind the "container" build tag.
e2e: image peer-image
	PODKIT_IMAGE=$(IMAGE):dev PODKIT_PEER_IMAGE=$(PEER_IMAGE) \
		$(GO) test -tags container -count=1 $(E2E_FLAGS) $(E2E_PKGS)

image: build
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)/tmp
	cp bin/podkit $(IMAGE_CTX)/podkit
	cp $(CA_BUNDLE) $(IMAGE_CTX)/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >$(IMAGE_CTX)/passwd
	printf 'root:x:0:\nnonroot:x:65532:\n' >$(IMAGE_CTX)/group
	docker build -f deploy/Dockerfile \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(COMMIT) \
		--build-arg CREATED=$(CREATED) \
		-t $(IMAGE):dev -t $(IMAGE):$(VERSION) \
		$(IMAGE_CTX)

peer-image:
	bash scripts/peer-image.sh $(PEER_IMAGE)

# Side-by-side runs against the peers; they report ratios and are never
# part of pass/fail.
bench: build
	@set -e; found=0; \
	for f in bench/*.sh; do \
		[ -e "$$f" ] || continue; found=1; \
		echo "== $$f"; bash "$$f"; \
	done; \
	[ $$found = 1 ] || echo "no bench/*.sh scripts"

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags container ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags container ./...

# Every Fuzz target in the module, FUZZTIME each (go test -fuzz takes one
# target in one package at a time).
fuzz:
	@set -e; \
	list=$$($(GO) test -list '^Fuzz' $(FUZZ_PKGS) 2>&1) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '\
		/^Fuzz/ { names = names " " $$1; next } \
		/^ok/ { n = split(names, a, " "); for (i = 1; i <= n; i++) print $$2, a[i]; names = "" }'); \
	if [ -z "$$targets" ]; then echo "no Fuzz targets"; exit 0; fi; \
	echo "$$targets" | while read -r pkg name; do \
		echo "== $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done

demo:
	$(GO) run ./cmd/podkit demo

deps:
	bash scripts/install-deps.sh

clean:
	rm -rf bin .build
