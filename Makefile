# discador — everyday commands. `make test` is exactly what CI (.ci/run) runs.
CARGO ?= cargo

.PHONY: run demo test bench bench-amd-corpus amd-corpus fmt lint migrate

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

amd-corpus:     ## the labeled AMD corpus (real voices from Debian packages, split by speaker) into target/amd-corpus/all
	scripts/amd-corpus/generate target/amd-corpus/all

bench-amd-corpus: ## the AMD corpus's validation and test splits through the real switch, both detectors (reports in target/amd-set/corpus-*.md); offline figures: cargo test --release --bench amd_offline -- --offline
	$(CARGO) test --test it amd_corpus::whole_ -- --ignored --nocapture --test-threads=1

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
