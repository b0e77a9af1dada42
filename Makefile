# funcmon - the README's commands. A thin wrapper around CMake and ctest:
#   make test    install what is missing (as root, with apt-get), build, run the whole
#                suite, then run it again under ASan+UBSan and under TSan, and run the
#                libFuzzer drivers (clang): the segment validator and the state-file
#                loader for FUZZ_SECONDS each, the HTTP query parser for
#                FUZZ_QUERY_SECONDS (a small parser, covered sooner)
#   make bench   build optimised and run the benchmarks
#   make clean   remove the build trees

# What compiling needs (the image builders install only these, through `make build`), and
# what the suite adds: checkers, sanitizer runtimes, real peers (Prometheus, wrk, Go's
# pprof), the container tools tests/integration/test_containers.sh drives. `make demo`
# needs the build packages plus curl and jq.
BUILD_PACKAGES := build-essential cmake pkg-config liburing-dev libck-dev libh2o-evloop-dev \
                  libmsgpack-dev libssl-dev libyaml-dev zlib1g-dev libmicrohttpd-dev
TEST_PACKAGES  := valgrind clang libclang-rt-14-dev curl jq prometheus golang-go wrk docker-compose \
                  python3-yaml podman runc catatonit mmdebstrap
DEMO_PACKAGES  := curl jq
JOBS     := $(shell nproc 2>/dev/null || echo 2)
CTEST    := ctest --output-on-failure --no-tests=error
FUZZ_SECONDS ?= 20
# Extra cmake arguments for a new build/ (the images pass -DFUNCMON_BUILD_TESTS=OFF).
CMAKE_ARGS ?=
FUZZ_QUERY_SECONDS ?= 10

.PHONY: all deps deps-build deps-demo install-packages build test test-plain test-asan test-tsan test-fuzz bench clean demo

all: build

# deps-build installs what `make build` needs, deps what `make test` needs: the missing
# packages of the list, with apt-get as root; as another user it prints the apt-get line.
deps-build:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BUILD_PACKAGES)"

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BUILD_PACKAGES) $(TEST_PACKAGES)"

deps-demo:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BUILD_PACKAGES) $(DEMO_PACKAGES)"

install-packages:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" -ne 0 ]; then \
	        echo "missing packages: $$missing"; \
	        echo "install them with: sudo apt-get install $$missing"; exit 1; \
	    fi; \
	    echo "installing: $$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build/CMakeCache.txt: | deps-build
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps-build build/CMakeCache.txt
	cmake --build build -j$(JOBS)

test-plain: deps build
	cd build && $(CTEST)

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFUNCMON_ASAN=ON -DFUNCMON_UBSAN=ON
	cmake --build build-asan -j$(JOBS)
	cd build-asan && $(CTEST)

test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DFUNCMON_TSAN=ON
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && $(CTEST)

test-fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DFUNCMON_FUZZ=ON
	cmake --build build-fuzz -j$(JOBS) --target fuzz_validate fuzz_state test_fuzz_state fuzz_http_query
	mkdir -p build-fuzz/corpus build-fuzz/corpus-state build-fuzz/corpus-http-query
	./build-fuzz/tests/fuzz_validate -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 build-fuzz/corpus
	./build-fuzz/tests/test_fuzz_state --write-seeds build-fuzz/corpus-state
	./build-fuzz/tests/fuzz_state -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 build-fuzz/corpus-state
	./build-fuzz/tests/fuzz_http_query -max_total_time=$(FUZZ_QUERY_SECONDS) -max_len=4096 -print_final_stats=1 \
	    build-fuzz/corpus-http-query

test: test-plain test-asan test-tsan test-fuzz

bench: build
	./build/tests/bench/bench_client
	./build/tests/bench/bench_sidecar ./build/sidecar/funcmond ./build/tests/e2e_client
	./build/tests/bench/bench_overload ./build/sidecar/funcmond
	./tests/bench/bench_http.sh ./build/sidecar/funcmond ./build/tests/e2e_client

# make demo: funcmond beside the demo service (client/examples), which sends itself load;
# prints the URLs to try and a live summary until Ctrl-C (or DEMO_SECONDS). See demo.sh for
# DEMO_* settings; BUILD_DIR=DIR uses another build tree (configured here if new).
BUILD_DIR ?= build
demo: deps-demo
	@test -f $(BUILD_DIR)/CMakeCache.txt || cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS) --target funcmond funcmon-demo
	./client/examples/demo.sh $(BUILD_DIR)

clean:
	rm -rf build build-asan build-tsan build-fuzz
