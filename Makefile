# The verbs a user types. `make help` lists them.
#
# Tools the project needs beyond the Rust toolchain are pinned here and installed into
# the project-local virtualenv .venv/ (never globally): cargo-lambda runs the functions
# locally and packages them; cfn-lint checks the SAM templates.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
CARGO_LAMBDA_VERSION := 1.9.2
CFN_LINT_VERSION := 1.58.0
SAM_TRANSLATOR_VERSION := 1.115.0
TOOLS_STAMP := $(VENV)/.tools-$(CARGO_LAMBDA_VERSION)-$(CFN_LINT_VERSION)-$(SAM_TRANSLATOR_VERSION)

# Tools in .venv/bin come first, so `cargo lambda` finds the pinned cargo-lambda.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR ?= auto

FUNCTIONS := option1-api-gateway option2-lambda-url option3-api-gateway-streaming
TEMPLATES := $(addsuffix /template.yaml,$(FUNCTIONS))

.PHONY: help setup build run demo test lint bench package deploy-option1 deploy-option2 deploy-option3 clean

help: ## List the verbs
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-16s %s\n", $$1, $$2}'

setup: $(TOOLS_STAMP) ## Install pinned cargo-lambda and cfn-lint into .venv/
$(TOOLS_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --quiet \
		cargo-lambda==$(CARGO_LAMBDA_VERSION) \
		cfn-lint==$(CFN_LINT_VERSION) \
		aws-sam-translator==$(SAM_TRANSLATOR_VERSION)
	@touch $@

build: ## Build every crate (debug)
	cargo build --workspace --bins

run: setup ## Run the whole system locally: agentcore-local, cargo lambda watch, local API Gateway
	cargo build --quiet -p local-stack -p stream-client
	cargo run --quiet -p local-stack -- run

demo: setup ## Start the stack, stream one prompt through each option, stop (non-zero if any failed)
	cargo build --quiet -p local-stack -p stream-client
	cargo run --quiet -p local-stack -- demo

test: setup ## Run every test (unit, integration, end-to-end through cargo lambda watch)
	cargo build --quiet --bin option1-api-gateway --bin option2-lambda-url --bin option3-api-gateway-streaming
	cargo test --workspace --no-fail-fast

lint: setup ## cargo fmt --check, clippy -D warnings, cfn-lint on the three templates
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint $(TEMPLATES)

bench: setup ## Measure cold start, latency, throughput, memory and package size; writes BENCHMARKS.md
	cargo build --release --workspace --bins
	cargo run --release -p bench -- --write BENCHMARKS.md

package: setup ## Build release zips with cargo lambda (x86_64 here; see README for arm64)
	cargo lambda build --release --compiler cargo --x86-64 --output-format zip $(addprefix --bin ,$(FUNCTIONS))
	@ls -l $(addprefix target/lambda/,$(addsuffix /bootstrap.zip,$(FUNCTIONS)))

deploy-option1: ## Deploy option 1 with SAM (guided)
	cd option1-api-gateway && sam build --beta-features && sam deploy --guided

deploy-option2: ## Deploy option 2 with SAM (guided)
	cd option2-lambda-url && sam build --beta-features && sam deploy --guided

deploy-option3: ## Deploy option 3 with SAM (guided)
	cd option3-api-gateway-streaming && sam build --beta-features && sam deploy --guided

clean: ## Remove build output and the virtualenv
	cargo clean
	rm -rf $(VENV)
