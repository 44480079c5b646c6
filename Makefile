# xcr0-sandbox. `make test` is the whole suite, the real-KVM lane included
# whenever this host's KVM does not apply XCR0 (and always under CI=true).

CARGO ?= cargo
SANDBOX := target/x86_64-unknown-linux-gnu/release/xcr0-sandbox
LANE := tests/nested/lane.sh
# The test binaries that run inside the lane: real programs, error cases,
# the XCR0 suite, the VMM's own probe and memory-mirror tests, CPUID
# policies and rr trace headers (replayable with --xcr0 only where XCR0 is
# applied), --explain (a disabled component's #UD comes only there).
LANE_TESTS := programs errors fidelity processes signals mixing xcr0 probe memory cpuid rr_trace explain

.PHONY: all build test test-host test-real-kvm demo bench lint soak clean

all: build

build:
	$(CARGO) build --release --locked

# Host lane first (fast, every test), then the real-KVM lane unless the
# host's own KVM enforces XCR0, in which case the XCR0 suite already ran.
test: lint test-host
	@if $(SANDBOX) --check >/dev/null 2>&1; then \
		echo "make: this host's KVM enforces XCR0: the XCR0 suite ran in the host lane"; \
	else \
		echo "make: this host's KVM does not enforce XCR0: running the real-KVM lane"; \
		$(MAKE) --no-print-directory test-real-kvm; \
	fi

test-host: build
	tests/install-deps.sh
	$(CARGO) test --release --locked --workspace

# The long form of the peer suites (tests/peers.rs): every stressor longer
# and three times over, the CPython selection several times. Not in CI.
soak: build
	tests/install-deps.sh
	$(CARGO) test --release --locked --test peers -- --ignored --test-threads=1 --nocapture

# Builds the test binaries, then runs them under kvm_amd inside QEMU (TCG).
test-real-kvm: build
	@bins=$$($(CARGO) test --release --locked --workspace --no-run --message-format=json 2>/dev/null \
		| tests/nested/test-binaries.sh $(LANE_TESTS)) || exit 1; \
	$(LANE) --timeout 1500 -- tests/nested/suite.sh $(CURDIR)/$(SANDBOX) $$bins || { \
		status=$$?; \
		echo "---- tail of the guest console (target/nested/last-console.log) ----"; \
		tail -n 40 target/nested/last-console.log 2>/dev/null | tr -d '\r'; \
		exit $$status; }

# The report program under XCR0 0x3 and 0x7, on a KVM that enforces XCR0:
# this host's if it does, else the lane's.
demo: build
	@if $(SANDBOX) --check >/dev/null 2>&1; then \
		echo "make: on this host's KVM"; tests/demo.sh $(CURDIR)/$(SANDBOX); \
	else \
		echo "make: this host's KVM does not enforce XCR0; on kvm_amd in the nested lane"; \
		$(LANE) --timeout 600 -- tests/demo.sh $(CURDIR)/$(SANDBOX); \
	fi

# The benchmark suite: each workload natively and in the sandbox, counters
# per forwarded syscall, a full VM for comparison; target/bench/results.md
# and .json. Measurements only: nothing here is a test (tests/bench/README.md).
bench: build
	tests/bench/bench.sh $(SANDBOX)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
