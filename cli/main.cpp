// pg_ingest: load, export and async-job command-line tool built on the pg_ingest client library.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"

namespace {

const char* const k_usage =
    "Usage: pg_ingest COMMAND [options]\n"
    "\n"
    "Fast, safe loading into PostgreSQL with the pg_ingest extension.\n"
    "\n"
    "Commands:\n"
    "  load      load CSV, TSV or text files (or stdin) into a table\n"
    "  export    export a table (in parallel, split on an integer key) as CSV\n"
    "  jobs      list async load jobs (--watch to follow them)\n"
    "  wait      wait for async load jobs to end\n"
    "  cancel    cancel an async load job\n"
    "  retry     retry a failed async load job\n"
    "\n"
    "Run 'pg_ingest COMMAND --help' for the options of a command.\n"
    "Connection: --dsn 'host=... dbname=...' | postgresql://... | jdbc:postgresql://..., or the\n"
    "PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD environment variables.\n"
    "Exit codes: 0 success, 2 success with rejected rows, 1 failure.\n";

int dispatch(const std::string& command, const std::vector<std::string>& args) {
    using namespace pg_ingest::cli;
    if (command == "--help" || command == "-h" || command == "help") {
        if (command == "help" && !args.empty()) {
            return dispatch(args.front(), {"--help"});
        }
        std::fputs(k_usage, stdout);
        return k_exit_ok;
    }
    if (command == "--version") {
        std::printf("pg_ingest %s\n", PG_INGEST_CLI_VERSION);
        return k_exit_ok;
    }
    if (command == "load") {
        return run_load(args);
    }
    if (command == "export") {
        return run_export(args);
    }
    if (command == "jobs") {
        return run_jobs(args);
    }
    if (command == "wait") {
        return run_wait(args);
    }
    if (command == "cancel") {
        return run_cancel(args);
    }
    if (command == "retry") {
        return run_retry(args);
    }
    std::fprintf(stderr, "pg_ingest: unknown command '%s'\n\n%s", command.c_str(), k_usage);
    return k_exit_failure;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fputs(k_usage, stderr);
        return pg_ingest::cli::k_exit_failure;
    }
    std::vector<std::string> args(argv + 2, argv + argc);
    // A password given in --dsn stays in the copy above; the process's own argument strings,
    // which every user of the machine can read (ps), lose it.
    for (int i = 2; i < argc; ++i) {
        if (std::strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
            pg_ingest::cli::scrub_password(argv[i + 1]);
        } else if (std::strncmp(argv[i], "--dsn=", 6) == 0) {
            pg_ingest::cli::scrub_password(argv[i] + 6);
        }
    }
    return dispatch(argv[1], args);
}
