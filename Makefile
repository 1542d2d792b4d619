# Thin wrapper over scripts/ and CMake. `make run` and `make test` set everything up themselves.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: run test deps build model bench soak clean fuzz test-asan test-tsan
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

# libFuzzer targets (fuzz/README.md): FUZZ_SECONDS each, in build-asan. The tokenizer targets need models/.cache.
FUZZ_SECONDS ?= 60
fuzz: model
	@FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) bash scripts/fuzz.sh

# The CPU test suite under ASan+UBSan (build-asan) or TSan (build-tsan); SANITIZE_LABELS narrows it to some CTest
# labels, e.g. SANITIZE_LABELS='scheduler|server'.
test-asan: model
	@JOBS=$(JOBS) SANITIZE_LABELS='$(SANITIZE_LABELS)' bash scripts/sanitize-test.sh asan

test-tsan: model
	@JOBS=$(JOBS) SANITIZE_LABELS='$(SANITIZE_LABELS)' bash scripts/sanitize-test.sh tsan

bench: model
	@BUILD_DIR=$(BUILD_DIR) bash scripts/bench.sh

# Mixed traffic against llama-chat-server for SOAK_MINUTES; fails when RSS grows > 32 MB after warm-up
# (docs/reliability.md, "Soak"). The figures are also written to $(BUILD_DIR)/soak.json.
soak: model
	@/usr/bin/python3 tests/server/soak.py --server_bin $(BUILD_DIR)/bin/llama-chat-server --source_dir . \
	  --minutes $(SOAK_MINUTES) --json $(BUILD_DIR)/soak.json

clean:
	rm -rf $(BUILD_DIR)
