# The two commands of the README are `make up` and `make test`; the other
# targets are their parts.

SHELL := /bin/bash
# testcontainers-go reaches containers through the default gateway when it
# finds /.dockerenv; on machines where that route goes nowhere, 127.0.0.1
# does. A value set by the caller wins.
export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1
export TESTCONTAINERS_RYUK_DISABLED ?= true

COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)
IMAGES := eval "$$(deploy/images.sh)"

.PHONY: up logs down build images test unit integration bench bench-reload bench-first-query vet

## up: build everything, start the stack in the background, wait until rotor is ready
up: build
	$(IMAGES) && $(COMPOSE) build -q && $(COMPOSE) up -d --remove-orphans
	deploy/wait-ready.sh http://127.0.0.1:9090/readyz

## logs: follow the stack's logs
logs:
	$(COMPOSE) logs -f

## down: stop the stack and delete its volumes and certificates
down:
	$(COMPOSE) down --volumes --remove-orphans
	@# The certificate files belong to the uids of the containers that wrote
	@# them, so a container removes them for a user who is not root.
	if [ -d local/certs ] && docker image inspect rotor:dev >/dev/null 2>&1; then \
		docker run --rm -u 0 -v "$(CURDIR)/local:/local" --entrypoint /bin/rm rotor:dev -rf /local/certs; fi
	rm -rf local

## build: static binaries for the rotor image
build:
	CGO_ENABLED=0 go build -trimpath -o bin/server ./cmd/server
	CGO_ENABLED=0 go build -trimpath -o bin/setup ./cmd/setup
	CGO_ENABLED=0 go build -trimpath -o bin/certrenew ./cmd/certrenew
	CGO_ENABLED=0 go build -trimpath -o bin/client ./cmd/client

## images: build or pull the Postgres, Vault and base images
images:
	$(IMAGES)

## test: vet, unit tests, then the integration suite, all with the race detector
test: vet unit integration

vet:
	go vet ./...

unit: images
	$(IMAGES) && go test -race -count=1 $$(go list ./... | grep -v /integration)

integration: images
	$(IMAGES) && go test -race -count=1 -timeout 40m -v ./integration/...

## bench: the rotation benchmark, the same load on static and on rotating database credentials
bench: images
	$(IMAGES) && ROTOR_BENCH=1 go test -count=1 -run TestBenchRotation -v -timeout 20m ./integration/

## bench-reload: time from a kubelet ..data swap to the first handshake that presents the new certificate, with fsnotify and with polling
bench-reload:
	go test -count=1 -run '^$$' -bench BenchmarkReloadLatency -benchtime 20x ./internal/tlsx/

## bench-first-query: a get on a new Postgres connection, first and after WarmNotes, against a later one
bench-first-query: images
	$(IMAGES) && go test -count=1 -run '^$$' -bench BenchmarkFirstQuery -benchtime 200x ./internal/db/
