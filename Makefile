# discador — everyday commands. `make test` is exactly what CI (.ci/run) runs.
CARGO ?= cargo

.PHONY: run demo test bench fmt lint migrate

run:            ## run the service (configuration from the environment, see README)
	$(CARGO) run -- serve

demo: run       ## for now the same as `run`

migrate:        ## create the database and apply migrations, then exit
	$(CARGO) run -- migrate

test:           ## all tests (needs MariaDB on 127.0.0.1:3306, root without password)
	$(CARGO) test --all-targets

bench:          ## 1,000,000 numbers through the API + estado latency (release build)
	$(CARGO) bench --bench api_load

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
