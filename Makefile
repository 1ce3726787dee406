# pg_ingest top level: deps, build, install, check, demo, bench.
# The extension is built with PGXS (extension/Makefile), the client library with CMake (build/).
PREFIX     ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo
BUILD_DIR  ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PG_CONFIG  ?= pg_config

.PHONY: all deps extension client install install-test check demo bench clean format

all: extension client

deps:
	@scripts/deps

extension:
	@$(MAKE) --no-print-directory -s -f extension/Makefile PG_CONFIG=$(PG_CONFIG)

client:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS) -- --no-print-directory -s

install: all
	@$(MAKE) --no-print-directory -s -f extension/Makefile PG_CONFIG=$(PG_CONFIG) install >/dev/null
	@cmake --install $(BUILD_DIR) --prefix $(PREFIX) >/dev/null
	@command -v ldconfig >/dev/null && [ "$$(id -u)" = 0 ] && ldconfig || true
	@echo "installed: extension into $$($(PG_CONFIG) --pkglibdir), client into $(PREFIX)"

# The test-only functions (pg_ingest_test), for the tests alone: `make install` leaves them out.
install-test:
	@$(MAKE) --no-print-directory -s -f extension/test/Makefile PG_CONFIG=$(PG_CONFIG) install >/dev/null

check: deps
	@$(MAKE) --no-print-directory install
	@$(MAKE) --no-print-directory install-test
	@PREFIX=$(PREFIX) BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/check

demo: deps
	@$(MAKE) --no-print-directory install
	@scripts/demo

bench: deps
	@$(MAKE) --no-print-directory install
	@BUILD_DIR=$(abspath $(BUILD_DIR)) bench/run

format:
	@clang-format -i extension/src/*.cpp extension/src/*.hpp extension/test/*.cpp $$(find include client cli tests bench -name '*.hpp' -o -name '*.cpp' 2>/dev/null)

clean:
	@$(MAKE) --no-print-directory -s -f extension/Makefile clean
	@$(MAKE) --no-print-directory -s -f extension/test/Makefile clean
	@rm -rf $(BUILD_DIR)
