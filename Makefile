# resweep: the two commands of the quick start, and their parts.
#   make demo   installs what is missing, builds, runs a real small sweep, prints results
#   make test   installs what is missing, builds, runs every test
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build test demo bench fuzz fuzz-smoke format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test, then each fuzz target briefly from its seed corpus.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900
	@$(MAKE) --no-print-directory fuzz-smoke

FUZZ_SECONDS ?= 60
fuzz: deps
	bash scripts/fuzz.sh --seconds $(FUZZ_SECONDS)

fuzz-smoke:
	bash scripts/fuzz.sh --seconds 15

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

bench: build
	@bash scripts/install-deps.sh --bench
	$(BUILD_DIR)/bench/coordinator_bench
	$(BUILD_DIR)/bench/submit_bench
	bash bench/compare_trainer.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR) build-fuzz demo-run
