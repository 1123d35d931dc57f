# The two commands: `make test` (everything CI runs) and `make dev` (the local stack).
.PHONY: test dev down bootstrap lint bench bench-lambda sam-build fuzz

test:            ## fmt, clippy, template lint, the whole suite against a fresh emulator
	bash scripts/test.sh

dev:             ## moto + tables/queues + sink + pump + cargo lambda watch on :9000
	bash scripts/dev.sh

down:            ## stop what `make dev` left running
	bash scripts/dev.sh down

bootstrap:       ## pinned tools into ./.venv
	bash scripts/bootstrap.sh

lint:            ## template lint only
	bash scripts/lint-template.sh

bench:           ## criterion benchmarks
	cargo bench -p hookline

bench-lambda:    ## release receiver beside its floors under a Runtime API: BENCH_ARGS="--events 5000 --aws stub,tls,moto"
	cargo build --release -p payment-events -p hookline-bench # as deployed: without the CLI's features
	cargo build -p hookline-cli # `hookline local up` for --aws moto
	bash scripts/bootstrap.sh && .venv/bin/python scripts/bench-lambda.py $(BENCH_ARGS)

sam-build:       ## release arm64 build of every function, as `sam deploy` ships them
	bash scripts/bootstrap.sh && PATH="$(CURDIR)/.venv/bin:$$PATH" sam build

fuzz:            ## every fuzz target for FUZZ_SECONDS (60) each, two at a time: make fuzz FUZZ_SECONDS=600
	bash scripts/fuzz.sh -j 2 $(or $(FUZZ_SECONDS),60)
