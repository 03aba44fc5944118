# streamvisor: `make demo` and `make test` work on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
CARGO ?= cargo
# What building and running needs (`make demo`), then what the test suite adds: real
# servers (nginx with rtmp and WebDAV), the metrics parser, a browser.
BUILD_PACKAGES := libavcodec-dev libavformat-dev libavutil-dev libswscale-dev \
	libswresample-dev libavfilter-dev libavdevice-dev ffmpeg pkg-config clang libclang-dev
TEST_PACKAGES := nginx-light libnginx-mod-rtmp python3-prometheus-client python3-m3u8 chromium redis-server

# $(call apt_install,PACKAGES[,EXTRA]): installs with apt those of PACKAGES that are not
# installed, and the packages EXTRA (a shell command) prints.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done; $(2)); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef
# The browser playback tests run tools/browser/play.mjs with Node.js: Debian's nodejs and npm
# are installed when no `node` or `npm` is on PATH (NodeSource's nodejs brings its own npm
# and conflicts with Debian's npm package).
NODE_PACKAGES := nodejs:node npm:npm
BROWSER_DIR := tools/browser

.PHONY: deps build-deps demo test fleet-bench soak filler-cost latency ll-quality valgrind asan bench compare lint fmt clean msrv package

# Installs what building and running needs, if missing (quick when nothing is).
build-deps:
	$(call apt_install,$(BUILD_PACKAGES))
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

# Installs everything the test suite needs too, if missing (quick when nothing is).
deps: build-deps
	$(call apt_install,$(TEST_PACKAGES),for pc in $(NODE_PACKAGES); do command -v $${pc#*:} >/dev/null || echo $${pc%%:*}; done)
	@# The metrics tests parse with prometheus_client: Debian's package serves the system
	@# python3; another python3 first on PATH (pyenv, a venv) gets it from PyPI.
	@python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus-client \
		|| { echo "could not install the Python package prometheus-client (python3 -m pip install prometheus-client)"; exit 1; }
	@# The LL-HLS playlists are read by the Python m3u8 package (nobody here wrote it).
	@python3 -c 'import m3u8' 2>/dev/null || python3 -m pip install -q m3u8 \
		|| { echo "could not install the Python package m3u8 (python3 -m pip install m3u8)"; exit 1; }
	@# playwright-core, hls.js and dash.js at the versions package-lock.json pins (no browser
	@# download: play.mjs drives Debian's /usr/bin/chromium), again when the lock file changed.
	@[ $(BROWSER_DIR)/node_modules/.package-lock.json -nt $(BROWSER_DIR)/package-lock.json ] \
		|| { echo "installing: the npm packages of $(BROWSER_DIR)"; npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund --loglevel=error; } \
		|| { echo "could not install the npm packages of $(BROWSER_DIR) (npm ci --prefix $(BROWSER_DIR))"; exit 1; }

# Transcodes the embedded default source (10 s 1080p30 test pattern + tone) to out/demo.
demo: build-deps
	$(CARGO) run --release --example transcode

# The workspace: the core crate and the fleet crate (fleet/: its tests start redis-server and
# worker processes).
test: deps
	$(CARGO) build --release --workspace --examples --bins
	$(CARGO) test --release --workspace --all-targets
	$(CARGO) test --release --workspace --doc
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --document-private-items
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --document-private-items --features serde,origin

# The fleet's takeover time after kill -9 of a live stream's node, and its overhead: on-demand
# jobs through 2 worker processes against one Manager (alternating runs, medians; printed;
# a few minutes; not in `make test`).
fleet-bench: deps
	$(CARGO) test --release -p streamvisor-fleet --test it fleet_bench -- --ignored --exact bench::fleet_bench --nocapture --test-threads 1

# 1000 start/stop cycles with thread, fd and RSS counts (about a minute; not in `make test`).
soak: deps
	$(CARGO) test --release --test it soak -- --ignored --exact liveness::soak_a_thousand_start_stop_cycles_leak_nothing --test-threads 1 --nocapture

# The CPU time of 60 s of live media against 60 s of the input-loss filler (printed).
filler-cost: deps
	$(CARGO) test --release --test it filler_cpu_cost -- --ignored --exact live_fill::filler_cpu_cost --nocapture

# Glass-to-glass latency of hls.js and dash.js on a live 720p source: LL-HLS and LL-DASH
# via the origin against the normal ladder (printed). SV_PART=0.25 measures another part
# target; SV_ONLY=LL-HLS only the runs whose name contains it.
latency: deps
	$(CARGO) test --release --test it latency_report -- --ignored --exact origin_ll::latency_report --nocapture

# The quality cost (PSNR) of the low-latency encoder settings, x264, x265 and SVT-AV1, with
# the FFmpeg CLI (a Markdown table; a few minutes).
ll-quality: build-deps
	bash tools/ll_quality.sh

# A short transcode and the lifecycle tests under valgrind memcheck; see valgrind.supp.
valgrind: deps
	bash tools/valgrind.sh

# The integration tests under AddressSanitizer, with the nightly toolchain where one is
# installed (none can be downloaded here): says so and skips without it.
asan: deps
	bash tools/asan.sh

bench: deps
	$(CARGO) bench

# Side-by-side with the FFmpeg CLI on the same input, same run.
compare: deps
	bash benches/compare_cli.sh

# The declared rust-version against the dependencies (and a compile check where that
# toolchain is installed); see tools/msrv.sh.
msrv:
	bash tools/msrv.sh

# What `cargo publish` would upload, and the package built on its own.
package:
	$(CARGO) package --list
	$(CARGO) package

# The tests, examples and benches build with the `serde` feature (the dev-dependency on the
# crate turns it on); `clippy --lib` checks the library without it.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --lib -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf out

# cargo-fuzz on the lavfi: grammar and on StreamConfig building, FUZZ_SECONDS (60) per
# target, with the nightly toolchain where one is installed: says so and skips without it.
# Not part of `make test`.
.PHONY: fuzz
fuzz: deps
	bash tools/fuzz.sh
