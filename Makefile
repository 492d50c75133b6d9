# Convenience targets; scripts/test.sh is the real test command.
.PHONY: run test build bench fuzz cluster

run:
	go run ./cmd/switchboard

build:
	go build -o switchboard ./cmd/switchboard

test:
	scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchmem ./hub/... ./clients/ ./protocol/

fuzz:
	go test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./protocol/
	go test -run '^$$' -fuzz FuzzNewMessage -fuzztime 30s ./protocol/
	go test -run '^$$' -fuzz FuzzNewDM -fuzztime 30s ./protocol/
	go test -run '^$$' -fuzz FuzzRemoteIP -fuzztime 30s ./clients/
	go test -run '^$$' -fuzz FuzzDecodePublication -fuzztime 30s ./hub/redisbroker/
	go test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime 30s ./hub/redisbroker/
	go test -run '^$$' -fuzz FuzzVerifyToken -fuzztime 30s ./cmd/switchboard/
	go test -run '^$$' -fuzz FuzzDecodeAPIMessage -fuzztime 30s ./cmd/switchboard/
	go test -run '^$$' -fuzz FuzzCheckGlobs -fuzztime 30s ./cmd/switchboard/
