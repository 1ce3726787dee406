// pg_ingest load (placeholder until COPY streaming lands).
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace pg_ingest::cli {

int run_load(const std::vector<std::string>&) {
    std::fprintf(stderr, "pg_ingest load: not yet available\n");
    return k_exit_failure;
}

}  // namespace pg_ingest::cli
