# Thin wrapper over scripts/ and CMake. `make run` and `make test` set everything up themselves.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: run test deps build model bench soak clean
SOAK_MINUTES ?= 10

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

# Mixed traffic against llama-chat-server for SOAK_MINUTES; fails when RSS grows > 32 MB after warm-up
# (docs/reliability.md, "Soak"). The figures are also written to $(BUILD_DIR)/soak.json.
soak: model
	@/usr/bin/python3 tests/server/soak.py --server_bin $(BUILD_DIR)/bin/llama-chat-server --source_dir . \
	  --minutes $(SOAK_MINUTES) --json $(BUILD_DIR)/soak.json

clean:
	rm -rf $(BUILD_DIR)
