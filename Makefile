# Recipes; a bare `make` lists them.
.DEFAULT_GOAL := help
.PHONY: help fmt lint test crd plan images install bench

help: ## list the recipes
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

fmt: ## format the code
	cargo fmt --all

lint: ## clippy and rustdoc with warnings as errors
	cargo clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

test: ## everything CI runs: fmt check, lints, tests (starts a throwaway PostgreSQL)
	scripts/test

crd: ## regenerate crds/crmtenant.yaml from the API types
	cargo run -q -p crm-operator -- crd > crds/crmtenant.yaml

plan: ## size every example and print its objects
	cargo run -q -p crm-operator -- plan examples/*.yaml

images: ## build the crm-operator and crm-server images (TAG=0.1.0)
	docker build -t crm-tenancy/crm-operator:$${TAG:-0.1.0} .
	docker build --target crm-server -t crm-tenancy/crm-server:$${TAG:-0.1.0} .

install: ## install the operator on the current kubectl context (config/)
	kubectl apply -k config/

bench: ## release benchmarks of bench/README.md (calibration, ceilings, operator at scale)
	cargo build --release --locked -p crm-server -p crm-operator -p crm-bench
	scripts/with-postgres bench/calibrate
	target/release/operator-scale --tenants 1000 --operator-binary target/release/crm-operator
