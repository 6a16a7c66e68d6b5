# The verbs a user types. `make help` lists them.
#
# Tools the project needs beyond the Rust toolchain are pinned here and installed into
# the project-local virtualenv .venv/ (never globally): cargo-lambda runs the functions
# locally and packages them; cfn-lint checks the SAM templates; the SAM CLI builds and
# deploys them. `make run`, `test` and `lint` install only the first group (seconds); the
# SAM CLI (about 800 MB with boto3 and its type stubs, a minute to install) comes with
# `make setup` or the first sam-*/deploy-* target.
#
# aws-sam-cli 1.170.0 pins aws-sam-translator==1.115.0 and cfn-lint>=1.52,<1.59 itself, so
# the three pins below install together (checked: one `pip install` of all four resolves).
#
# checkov (a second template scanner, run by `make lint`) pins boto3==1.35.49 while the SAM
# CLI pins boto3 1.43.x: pip cannot resolve the two together, so checkov has a virtualenv of
# its own inside the ignored .venv/ (.venv/checkov/): 290 MB, 30 s to install on an idle
# machine with the wheels cached, 65 s with builds running beside it.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
CARGO_LAMBDA_VERSION := 1.9.2
CFN_LINT_VERSION := 1.58.0
SAM_TRANSLATOR_VERSION := 1.115.0
SAM_CLI_VERSION := 1.170.0
TOOL_PINS := cargo-lambda==$(CARGO_LAMBDA_VERSION) cfn-lint==$(CFN_LINT_VERSION) aws-sam-translator==$(SAM_TRANSLATOR_VERSION)
TOOLS_STAMP := $(VENV)/.tools-$(CARGO_LAMBDA_VERSION)-$(CFN_LINT_VERSION)-$(SAM_TRANSLATOR_VERSION)
SAM_STAMP := $(VENV)/.sam-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)-$(SAM_TRANSLATOR_VERSION)
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.checkov-$(CHECKOV_VERSION)

# Tools in .venv/bin come first, so `cargo lambda` finds the pinned cargo-lambda.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR ?= auto
# The SAM CLI sends usage telemetry unless told not to (and this machine has no route for it).
export SAM_CLI_TELEMETRY ?= 0

FUNCTIONS := option1-api-gateway option2-lambda-url option3-api-gateway-streaming
TEMPLATES := $(addsuffix /template.yaml,$(FUNCTIONS))
# What `make run` and `make demo` need, built by one cargo invocation whose progress bar
# stays on screen. The local stack's own function build then finds the functions fresh.
STACK_PACKAGES := -p local-stack -p stream-client $(addprefix -p ,$(FUNCTIONS))

# `sam build` of each option at x86_64 (this machine has no aarch64 standard library), all
# three into one cargo target directory so the release dependencies compile once.
SAM_ARCH ?= x86_64
SAM_BUILD_DIR := target/sam

.PHONY: help setup tools browser-deps browser-test build run demo test lint check-build-graph fuzz sam-validate sam-build bench package deploy-option1 deploy-option2 deploy-option3 clean

help: ## List the verbs
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-18s %s\n", $$1, $$2}'

setup: $(TOOLS_STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) ## Install the pinned cargo-lambda, cfn-lint, SAM CLI and checkov into .venv/

tools: $(TOOLS_STAMP)
$(TOOLS_STAMP):
	@echo "Installing the pinned tools into $(VENV)/: $(TOOL_PINS)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --quiet --progress-bar off $(TOOL_PINS)
	@touch $@

$(SAM_STAMP): $(TOOLS_STAMP)
	@echo "Installing the pinned SAM CLI into $(VENV)/: aws-sam-cli==$(SAM_CLI_VERSION) (about a minute)"
	$(VENV)/bin/pip install --disable-pip-version-check --quiet --progress-bar off \
		aws-sam-cli==$(SAM_CLI_VERSION) $(TOOL_PINS)
	@touch $@

# Not on PATH: its own boto3 and friends stay out of the SAM CLI's way.
$(CHECKOV_STAMP):
	@echo "Installing the pinned checkov into $(CHECKOV_VENV)/: checkov==$(CHECKOV_VERSION) (30 to 60 s)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --disable-pip-version-check --quiet --progress-bar off checkov==$(CHECKOV_VERSION)
	@touch $@

# The browser tests (crates/local-stack/tests/browser.rs runs web/tests/ with node --test)
# drive Debian's Chromium with playwright-core from npm (pinned in web/package-lock.json,
# installed into web/node_modules/). Chromium comes from apt-get (as root, or with sudo):
# about 25 s on this machine; playwright cannot download browsers here.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
WEB_DEPS_STAMP := web/node_modules/.installed

browser-deps: ## Install what the browser tests need: chromium (apt-get) and web/node_modules (npm ci)
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		echo "Installing nodejs and npm with apt-get (the browser tests run under node --test)"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; \
	fi
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "Installing chromium and chromium-driver with apt-get (the browser tests drive it)"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi
	@$(MAKE) --no-print-directory $(WEB_DEPS_STAMP)

$(WEB_DEPS_STAMP): web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	@touch $@

browser-test: tools browser-deps ## Only the browser tests: the page in headless Chromium (screenshot in target/browser/)
	cargo build $(addprefix --bin ,$(FUNCTIONS))
	cargo test -p local-stack --test browser

build: ## Build every crate (debug)
	cargo build --workspace --bins

# `cargo run --quiet` below only starts the binary the build above made (same features:
# see the root Cargo.toml). Add --verbose (ARGS=--verbose) to see the functions' logs inline.
run: tools ## Run the whole system locally: agentcore-local, cargo lambda watch, local API Gateway
	cargo build $(STACK_PACKAGES)
	cargo run --quiet -p local-stack -- run $(ARGS)

demo: tools ## Start the stack, stream one prompt through each option, stop (non-zero if any failed)
	cargo build $(STACK_PACKAGES)
	cargo run --quiet -p local-stack -- demo $(ARGS)

test: tools browser-deps ## Run every test (unit, integration, end-to-end through cargo lambda watch, the page in Chromium)
	cargo build $(addprefix --bin ,$(FUNCTIONS))
	cargo test --workspace --no-fail-fast

# checkov reads .checkov.yaml (offline, CloudFormation checks only); the rules it skips are
# listed with their reasons in each template's Metadata (checkov: skip:).
lint: tools $(CHECKOV_STAMP) ## cargo fmt --check, clippy -D warnings, cfn-lint and checkov on the three templates
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint $(TEMPLATES)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml $(addprefix --file ,$(TEMPLATES))

check-build-graph: ## Check that the builds of run, test and cargo lambda watch share every dependency
	$(PYTHON) .ci/check-build-graph

# Fuzzing (docs/FUZZING.md): cargo-fuzz, pinned, installed into target/tools/ (never
# globally), runs the targets of fuzz/ (a workspace of its own, outside `make test`'s time
# budget) with the nightly toolchain, which libFuzzer's sanitizer instrumentation needs.
# FUZZ_SECONDS is per target; the corpus grows in fuzz/corpus/ (not committed) from the
# seeds in fuzz/seeds/.
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_STAMP := target/tools/.cargo-fuzz-$(CARGO_FUZZ_VERSION)
FUZZ_TOOLCHAIN ?= nightly
FUZZ_SECONDS ?= 150
FUZZ_TARGETS ?= request_parser sse_decoder collector sigv4_verifier

$(CARGO_FUZZ_STAMP):
	cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root target/tools
	@touch $@

fuzz: $(CARGO_FUZZ_STAMP) ## Run each fuzz target for FUZZ_SECONDS (default 150) with cargo fuzz on nightly
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "cargo fuzz run $$t: $(FUZZ_SECONDS) s"; \
		PATH=$(CURDIR)/target/tools/bin:$$PATH cargo +$(FUZZ_TOOLCHAIN) fuzz run --fuzz-dir fuzz $$t \
			fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

sam-validate: $(SAM_STAMP) ## sam validate --lint on the three templates
	@for f in $(FUNCTIONS); do \
		echo "sam validate --lint: $$f/template.yaml"; \
		(cd $$f && sam validate --lint --template template.yaml) || exit 1; \
	done

# One CARGO_TARGET_DIR for the three builds (the workspace's own target/ unless set): the
# release dependencies compile once and each option adds its own LTO link. The check after
# each build: the artifact is an x86_64 ELF executable, byte for byte the binary cargo
# lambda built for that option.
sam-build: $(SAM_STAMP) ## sam build --beta-features for each option at x86_64, and check each bootstrap
	@for f in $(FUNCTIONS); do \
		start=$$(date +%s); \
		echo "sam build: $$f (Architecture=$(SAM_ARCH))"; \
		(cd $$f && sam build --beta-features --template template.yaml \
			--build-dir $(CURDIR)/$(SAM_BUILD_DIR)/$$f \
			--parameter-overrides Architecture=$(SAM_ARCH)) || exit 1; \
		$(PYTHON) .ci/check-bootstrap $(SAM_BUILD_DIR)/$$f/AgentFunction/bootstrap $$f $(SAM_ARCH) || exit 1; \
		echo "sam build: $$f took $$(( $$(date +%s) - start )) s"; \
	done

# The driver is started from target/release, not with `cargo run -p bench`: cargo resolves
# features per invocation, and `-p bench` alone would resolve fewer than the workspace build
# above and compile much of the graph a second time. One section on its own:
# `target/release/bench --section soak` (after the build; `--help` lists them).
bench: tools ## Measure cold start, latency, throughput, memory, package size, access records, load with faults, many streams per process; writes BENCHMARKS.md
	cargo build --release --workspace --bins
	target/release/bench --write BENCHMARKS.md

package: tools ## Build release zips with cargo lambda (x86_64 here; see README for arm64)
	cargo lambda build --release --compiler cargo --x86-64 --output-format zip $(addprefix --bin ,$(FUNCTIONS))
	@ls -l $(addprefix target/lambda/,$(addsuffix /bootstrap.zip,$(FUNCTIONS)))

deploy-option1: $(SAM_STAMP) ## Deploy option 1 with SAM (guided)
	cd option1-api-gateway && sam build --beta-features && sam deploy --guided

deploy-option2: $(SAM_STAMP) ## Deploy option 2 with SAM (guided)
	cd option2-lambda-url && sam build --beta-features && sam deploy --guided

deploy-option3: $(SAM_STAMP) ## Deploy option 3 with SAM (guided)
	cd option3-api-gateway-streaming && sam build --beta-features && sam deploy --guided

clean: ## Remove build output and the virtualenv
	cargo clean
	rm -rf $(VENV)
