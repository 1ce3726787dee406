// pg_ingest export (placeholder until the Exporter lands).
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace pg_ingest::cli {

int run_export(const std::vector<std::string>&) {
    std::fprintf(stderr, "pg_ingest export: not yet available\n");
    return k_exit_failure;
}

}  // namespace pg_ingest::cli
