// pg_ingest load: the command line turned into settings (no I/O).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pg_ingest/copy_format.hpp>
#include <pg_ingest/options.hpp>
#include <pg_ingest/qualified_name.hpp>

#include "args.hpp"
#include "records.hpp"

namespace pg_ingest::cli {

struct LoadSettings {
    std::vector<std::string> sources;  // files; "-" or none: stdin
    QualifiedName table;
    std::vector<std::string> columns;  // empty: the table's columns in order
    InputFormat input_format = InputFormat::csv;
    CopyTextFormat format;  // header stays false: the header line is skipped client-side
    bool header = false;
    // The input encoding's multibyte characters may end in an ASCII byte (SJIS, BIG5, ...).
    bool ascii_trail_bytes = false;
    char quote = '"';
    std::string conflict = "none";  // none | upsert | update | ignore | strict
    std::vector<std::string> conflict_columns;
    std::vector<std::string> update_columns;
    std::string mode = "copy";  // copy | insert | upsert
    bool async = false;
    std::string job_key;
    std::uint64_t batch_size = 0;  // rows per transaction; 0: the whole input in one
    std::uint64_t batch_bytes = 64u * 1024u * 1024u;
    bool ignore_errors = false;  // --exception-mode ignore
    std::string reject_file;
    std::size_t parallel = 1;
    std::optional<double> timeout;  // --async: bound on waiting for the jobs
    Options options;                // the connector vocabulary (--option), retries, async sizes
    bool quiet = false;
    std::chrono::milliseconds connect_timeout{30000};
};

// The option table of `pg_ingest load` (without the common options).
std::vector<OptionSpec> load_option_specs();
// Builds and cross-checks the settings. Throws UsageError naming the offending option.
LoadSettings load_settings(const ParsedArgs& args);

}  // namespace pg_ingest::cli
