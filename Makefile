# Thin wrapper over scripts/ and CMake. `make run` and `make test` set everything up themselves.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: run test deps build model bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	@BUILD_DIR=$(BUILD_DIR) JOBS=$(JOBS) bash scripts/build.sh

model: build
	@BUILD_DIR=$(BUILD_DIR) bash scripts/fetch-model.sh

run: model
	@BUILD_DIR=$(BUILD_DIR) bash scripts/run.sh

test: model
	@BUILD_DIR=$(BUILD_DIR) JOBS=$(JOBS) bash scripts/test.sh

bench: model
	@BUILD_DIR=$(BUILD_DIR) bash scripts/bench.sh

clean:
	rm -rf $(BUILD_DIR)
