# resweep: the two commands of the quick start, and their parts.
#   make demo   installs what is missing, builds, runs a real small sweep, prints results
#   make test   installs what is missing, builds, checks the thread-safety annotations,
#               runs every test
#   make tsan   the scheduler and integration tests under ThreadSanitizer
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build test thread-safety tsan demo bench fuzz fuzz-smoke format clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The thread-safety analysis, every test (JOBS at once: most of them wait on real
# processes more than they compute), then each fuzz target briefly from its seed corpus.
test: build
	@$(MAKE) --no-print-directory thread-safety
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900 -j $(JOBS)
	@$(MAKE) --no-print-directory fuzz-smoke

# clang -Wthread-safety -Werror over every project source (docs/development.md).
thread-safety: configure
	bash scripts/thread-safety-check.sh --build-dir $(BUILD_DIR) --jobs $(JOBS)

# ThreadSanitizer build (build-tsan/) of the scheduler and integration tests.
tsan: deps
	bash scripts/tsan.sh --jobs $(JOBS)

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
	rm -rf $(BUILD_DIR) build-fuzz build-tsan demo-run
