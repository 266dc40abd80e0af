# qnetd Makefile: the named targets humans and CI share.
#
#   make run            start the server (TLS off, port $(PORT))
#   make test           fmt check, clippy -D warnings, all tests, docs, arch/no-alloc gates
#   make interop        real corosync cluster against our release binary (root)
#   make ci             test + interop
#   make bench          criterion benchmarks

CARGO      ?= cargo
PORT       ?= 5403
RUN_DIR    ?= $(CURDIR)/target/run
INTEROP    ?= $(CURDIR)/../shared/interop
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE    := $(TARGET_DIR)/release/qnetd
# Scenarios of ../shared/interop/scenarios.sh (all of them; g is TLS with
# the node-side certutil flow signed by our `qnetd certutil`).
INTEROP_SCENARIOS ?= a b c d e f g h i
INTEROP_SKIPPED   ?=

# The sans-IO layers must not name I/O or the clock, nor allocate.
SANS_IO_DIRS := src/proto src/algo src/core

.PHONY: all build release run test fmt-check clippy unit doc arch no-alloc interop ci bench bench-compare callgrind fuzz clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release --bin qnetd

run: release
	@mkdir -p $(RUN_DIR)
	$(RELEASE) -f -s off -p $(PORT) \
		-S lock_file=$(RUN_DIR)/qnetd.pid,local_socket_file=$(RUN_DIR)/qnetd.sock

test: fmt-check clippy unit doc arch no-alloc

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	RUST_TEST_THREADS=$${RUST_TEST_THREADS:-8} $(CARGO) test --all-targets
	$(CARGO) test --doc

doc:
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --no-deps

# Architecture gate: the sans-IO layers never touch sockets, TLS, files or the clock.
arch:
	@! grep -rnE '\bmio::|\brustls::|std::net::|std::fs::|std::io::Read|Instant::now|SystemTime::now' $(SANS_IO_DIRS) \
		|| (echo "sans-IO layer names I/O or the clock (see above)"; exit 1)
	@echo "arch: ok"

# Allocation gate (the runtime proof is tests/no_alloc.rs): no ad-hoc
# allocation in the per-message code of proto and algo (proto/build.rs holds
# the client-side builders for tests and tools).
no-alloc:
	@! grep -rnE --exclude=build.rs '\bformat!|\.to_vec\(\)|\.to_string\(\)|\bBox::new|\bvec!' src/proto src/algo \
		|| (echo "allocation in a hot-path layer (see above)"; exit 1)
	@echo "no-alloc: ok"

interop: release
	@[ "$$(id -u)" = 0 ] || { echo "make interop needs root (network namespaces)"; exit 1; }
	@[ -z "$(INTEROP_SKIPPED)" ] || echo "make interop: leaving out $(INTEROP_SKIPPED)"
	@[ -x $(INTEROP)/scenarios.sh ] || { echo "interop harness not found at $(INTEROP) (set INTEROP=...)"; exit 1; }
	QI_RESULTS=$(TARGET_DIR)/interop-results QI_QNETD_CERTUTIL='$(RELEASE) certutil' \
	$(INTEROP)/scenarios.sh '$(RELEASE) -f -d -s "$$QNETD_TLS" -l "$$QNETD_ADDR" -p "$$QNETD_PORT"' \
		$(INTEROP_SCENARIOS)

ci: test interop

bench:
	$(CARGO) bench --bench codec --bench core

# Side-by-side load comparison with the reference corosync-qnetd (about 10
# minutes; BENCH_ARGS=--quick for a smoke run). Writes target/bench-compare/.
bench-compare:
	scripts/bench-compare.sh $(BENCH_ARGS)

# Instructions per heartbeat round trip, ours and the reference's (valgrind).
callgrind:
	scripts/callgrind.sh $(CALLGRIND_ARGS)

# Fuzzing needs cargo-fuzz (cargo install cargo-fuzz); RUSTC_BOOTSTRAP lets
# a stable toolchain take the sanitizer flags.
FUZZ_SECONDS ?= 60
fuzz:
	cd fuzz && for t in frame msg_roundtrip instance; do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
