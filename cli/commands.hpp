// The subcommands of pg_ingest. Each takes the arguments after its name and returns the exit
// code; none throws.
#pragma once

#include <string>
#include <vector>

namespace pg_ingest::cli {

int run_load(const std::vector<std::string>& args);
int run_export(const std::vector<std::string>& args);
int run_jobs(const std::vector<std::string>& args);
int run_wait(const std::vector<std::string>& args);
int run_cancel(const std::vector<std::string>& args);
int run_retry(const std::vector<std::string>& args);

}  // namespace pg_ingest::cli
