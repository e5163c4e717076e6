# discador — everyday commands. `make test` is exactly what CI (.ci/run) runs.
CARGO ?= cargo

.PHONY: run demo test bench fmt lint migrate

run:            ## run the service (configuration from the environment, see README)
	$(CARGO) run -- serve

demo:           ## dial a demo campaign end to end through the simulator (SQLite file discador.db)
	$(CARGO) run -- demo

migrate:        ## create the database and apply migrations, then exit
	$(CARGO) run -- migrate

test:           ## all tests, on both backends (needs MariaDB on 127.0.0.1:3306, root without password)
	$(CARGO) test --all-targets

bench:          ## every benchmark, release build, store benches on MySQL and SQLite (BENCH_BACKEND=mysql|sqlite|both; figures go to BENCHMARKS.md)
	$(CARGO) bench

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
