#include "load_settings.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <pg_ingest/error.hpp>

#include "common.hpp"

namespace pg_ingest::cli {

namespace {

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// The key as Options knows it: lower case, without a Relyt "sink." prefix.
std::string option_key(const std::string& key) {
    std::string normalized = lower(key);
    if (normalized.rfind("sink.", 0) == 0) {
        normalized.erase(0, 5);
    }
    return normalized;
}

std::string one_of(const std::string& value, const std::string& what,
                   const std::vector<std::string>& allowed) {
    const std::string normalized = lower(value);
    if (std::find(allowed.begin(), allowed.end(), normalized) == allowed.end()) {
        std::string list;
        for (const auto& item : allowed) {
            list += (list.empty() ? "" : ", ") + item;
        }
        throw UsageError(what + " must be one of " + list + ", not '" + value + "'");
    }
    return normalized;
}

std::string single_character(const std::string& value, const std::string& what) {
    if (value == "\\t" || lower(value) == "tab") {
        return "\t";
    }
    if (value.size() != 1) {
        throw UsageError(what + " must be a single character (or \\t), not '" + value + "'");
    }
    return value;
}

}  // namespace

std::vector<OptionSpec> load_option_specs() {
    return {
        {"table", "TABLE", "target table (schema.table ok; unquoted names fold to lower case)"},
        {"format", "csv|tsv|text", "input format (csv); tsv is text format with tab separators"},
        {"header", "", "the first line of each file is a header (skipped)"},
        {"delimiter", "CHAR", "field separator (csv: ',', text/tsv: tab; '\\t' for tab)"},
        {"quote", "CHAR", "csv quote character (\")"},
        {"null", "STRING", "string that means NULL (csv: empty unquoted, text: \\N)"},
        {"encoding", "NAME", "input encoding, e.g. LATIN1 (default: PGCLIENTENCODING, else UTF8)"},
        {"columns", "A,B,...", "the input's columns, in order (default: all, in table order)"},
        {"conflict", "MODE", "none|upsert|update|ignore|strict: on a key that exists (none)"},
        {"conflict-columns", "A,B", "the key (default: primary key, else the unique index)"},
        {"update-columns", "A,B", "columns overwritten on conflict (default: all loaded)"},
        {"mode", "copy|insert|upsert",
         "copy: COPY (server parses); insert/upsert: typed rows, INSERT [ON CONFLICT] (copy)"},
        {"async", "", "load through an async job: stage, submit, wait"},
        {"job-key", "KEY", "--async: idempotency key; re-running with it never loads twice"},
        {"timeout", "SECONDS", "--async: stop waiting for the jobs after this long"},
        {"batch-size", "N",
         "rows per transaction (copy: default the whole input; insert/upsert: batchsize)"},
        {"exception-mode", "MODE", "strict (stop at the first bad row) | ignore (skip it)"},
        {"reject-file", "FILE", "write rejected rows with their errors here (implies ignore)"},
        {"parallel", "N", "connections loading batches at once (1)"},
        {"option", "KEY=VALUE", "connector option, e.g. batchsize=50000 (repeatable)", true},
    };
}

// Encodings whose multibyte characters may contain a byte in 0x40..0x7E (PostgreSQL's
// client-only encodings, by their normalized names and aliases): a backslash (text format) or
// an ASCII quote character there is not what the record scanner takes it for.
static bool has_ascii_trail_bytes(const std::string& name) {
    std::string key;
    for (const char c : name) {
        if (std::isalnum(static_cast<unsigned char>(c))) {
            key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    static const std::set<std::string> unsafe = {
        "sjis", "mskanji", "shiftjis",   "win932",  "windows932", "shiftjis2004",
        "big5", "win950",  "windows950", "gbk",     "win936",     "windows936",
        "uhc",  "win949",  "windows949", "gb18030", "johab"};
    return unsafe.count(key) != 0;
}

// Cutting input into batches relies on finding record ends byte by byte; in those encodings a
// cut could fall inside a record. One unbatched COPY does not depend on the cuts.
static void refuse_unsplittable_encoding(const LoadSettings& s) {
    const bool quote_in_range = static_cast<unsigned char>(s.quote) >= 0x40;
    if (!s.ascii_trail_bytes || (s.input_format == InputFormat::csv && !quote_in_range) ||
        (s.batch_size == 0 && !s.async)) {
        return;
    }
    throw UsageError("input in " + *s.format.encoding +
                     " cannot be cut into batches safely (a multibyte character may end in the "
                     "byte of a backslash or quote); load it as one COPY (no --batch-size, "
                     "--parallel or --async), or convert it to UTF-8 first");
}

// COPY's own checks of the format options (ProcessCopyOptions), with its messages: --mode
// insert|upsert parse on the client and send no COPY, and must refuse what copy mode's server
// refuses rather than load it another way.
static void check_copy_format(const LoadSettings& s) {
    const bool csv = s.input_format == InputFormat::csv;
    const char delimiter = s.format.delimiter ? (*s.format.delimiter)[0] : (csv ? ',' : '\t');
    const std::string null_string = s.format.null_string.value_or(csv ? "" : "\\N");
    const char quote = s.format.quote ? (*s.format.quote)[0] : '"';
    if (delimiter == '\n' || delimiter == '\r') {
        throw UsageError("COPY delimiter cannot be newline or carriage return");
    }
    if (null_string.find_first_of("\r\n") != std::string::npos) {
        throw UsageError("COPY null representation cannot use newline or carriage return");
    }
    if (!csv && std::string_view("\\.abcdefghijklmnopqrstuvwxyz0123456789").find(delimiter) !=
                    std::string_view::npos) {
        throw UsageError(std::string("COPY delimiter cannot be \"") + delimiter + "\"");
    }
    if (csv && delimiter == quote) {
        throw UsageError("COPY delimiter and quote must be different");
    }
    if (null_string.find(delimiter) != std::string::npos) {
        throw UsageError("COPY delimiter must not appear in the NULL specification");
    }
    if (csv && null_string.find(quote) != std::string::npos) {
        throw UsageError("CSV quote character must not appear in the NULL specification");
    }
}

LoadSettings load_settings(const ParsedArgs& args) {
    LoadSettings s;
    s.sources = args.positionals();
    s.quiet = args.has("quiet");
    const double connect_seconds = args.get_seconds("connect-timeout").value_or(30.0);
    if (connect_seconds <= 0) {
        throw UsageError("--connect-timeout must be positive");
    }
    s.connect_timeout = std::chrono::milliseconds(static_cast<long long>(connect_seconds * 1000));

    // Connector options first: explicit flags below override them.
    std::set<std::string> given;
    for (const auto& item : args.all("option")) {
        const auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw UsageError("--option expects KEY=VALUE, got '" + item + "'");
        }
        const std::string key = item.substr(0, eq);
        try {
            s.options.set(key, item.substr(eq + 1));
        } catch (const Error& error) {
            throw UsageError(std::string("--option ") + item + ": " + error.what());
        }
        given.insert(option_key(key));
    }
    const bool case_sensitive = s.options.case_sensitive;
    // --option connecttimeoutms, unless --connect-timeout says otherwise.
    if (given.count("connecttimeoutms") != 0 && !args.get("connect-timeout")) {
        s.connect_timeout = s.options.connect_timeout;
    }

    const auto table = args.get("table");
    if (!table) {
        throw UsageError("--table is required");
    }
    try {
        s.table = QualifiedName::parse(*table, case_sensitive);
    } catch (const Error& error) {
        throw UsageError(std::string("--table: ") + error.what());
    }
    if (s.table.schema.empty() && given.count("targetschema") != 0) {
        s.table.schema = s.options.target_schema;
    }
    if (const auto columns = args.get("columns")) {
        s.columns = parse_identifiers(*columns, "--columns", case_sensitive);
    }

    const std::string format =
        one_of(args.get_or("format", "csv"), "--format", {"csv", "tsv", "text"});
    s.input_format = format == "csv" ? InputFormat::csv : InputFormat::text;
    s.format.format = format == "csv" ? "csv" : "text";
    s.header = args.has("header");
    if (const auto delimiter = args.get("delimiter")) {
        s.format.delimiter = single_character(*delimiter, "--delimiter");
    } else if (format == "tsv") {
        s.format.delimiter = "\t";
    }
    if (const auto quote = args.get("quote")) {
        if (format != "csv") {
            throw UsageError("--quote applies to --format csv only");
        }
        s.format.quote = single_character(*quote, "--quote");
        s.quote = (*s.format.quote)[0];
    }
    if (const auto null = args.get("null")) {
        s.format.null_string = *null;
    }
    if (const auto encoding = args.get("encoding")) {
        s.format.encoding = *encoding;
    }
    check_copy_format(s);

    const std::vector<std::string> conflicts = {"none", "upsert", "update", "ignore", "strict"};
    if (const auto conflict = args.get("conflict")) {
        s.conflict = one_of(*conflict, "--conflict", conflicts);
    } else if (given.count("conflictmode") != 0) {
        s.conflict = to_string(s.options.conflict_mode);
    }
    if (const auto columns = args.get("conflict-columns")) {
        s.conflict_columns = parse_identifiers(*columns, "--conflict-columns", case_sensitive);
    } else {
        s.conflict_columns = s.options.conflict_columns;
    }
    if (const auto columns = args.get("update-columns")) {
        s.update_columns = parse_identifiers(*columns, "--update-columns", case_sensitive);
    } else {
        s.update_columns = s.options.update_columns;
    }
    if (s.conflict == "none" && (!s.conflict_columns.empty() || !s.update_columns.empty())) {
        throw UsageError(
            "--conflict-columns / --update-columns need --conflict upsert, update, "
            "ignore or strict");
    }
    if (!s.update_columns.empty() && s.conflict != "upsert" && s.conflict != "update") {
        throw UsageError("--update-columns applies to --conflict upsert or update only");
    }

    if (const auto mode = args.get("mode")) {
        s.mode = one_of(*mode, "--mode", {"copy", "insert", "upsert"});
    } else if (given.count("writemode") != 0 || given.count("usecopy") != 0) {
        s.mode = to_string(s.options.write_mode);
    }
    s.async = args.has("async");
    s.job_key = args.get_or("job-key", "");
    if (!s.job_key.empty() && !s.async) {
        throw UsageError("--job-key applies to --async loads only");
    }
    s.timeout = args.get_seconds("timeout");
    if (s.timeout && !s.async) {
        throw UsageError("--timeout applies to --async loads only");
    }
    if (s.async && s.mode != "copy") {
        throw UsageError("--async stages with COPY: it cannot be combined with --mode " + s.mode);
    }
    // The library's sessions are UTF8 whatever PGCLIENTENCODING says: in copy mode it becomes
    // the COPY's ENCODING, as the input's encoding it names.
    const char* client_encoding = std::getenv("PGCLIENTENCODING");
    // "auto" (libpq: take it from the locale) names no encoding of its own: the input is read
    // as UTF-8, as without PGCLIENTENCODING.
    const bool from_environment = !s.format.encoding && client_encoding != nullptr &&
                                  *client_encoding != '\0' && lower(client_encoding) != "auto";
    if (from_environment) {
        s.format.encoding = std::string(client_encoding);
    }
    if (s.mode != "copy" && s.format.encoding) {
        const std::string encoding = lower(*s.format.encoding);
        if (encoding != "utf8" && encoding != "utf-8" && encoding != "unicode") {
            throw UsageError(std::string(from_environment ? "PGCLIENTENCODING=" : "--encoding ") +
                             *s.format.encoding + ": --mode " + s.mode +
                             " reads UTF-8 only (the server converts other encodings in --mode "
                             "copy)");
        }
    }
    s.ascii_trail_bytes = s.format.encoding && has_ascii_trail_bytes(*s.format.encoding);

    if (const auto batch = args.get_int("batch-size", 1, std::int64_t(1) << 40)) {
        s.batch_size = static_cast<std::uint64_t>(*batch);
    } else if (given.count("batchsize") != 0) {
        s.batch_size = s.options.batch_size;
    }
    s.batch_bytes = s.options.batch_bytes;

    s.reject_file = args.get_or("reject-file", "");
    if (const auto mode = args.get("exception-mode")) {
        s.ignore_errors = one_of(*mode, "--exception-mode", {"strict", "ignore"}) == "ignore";
        if (!s.ignore_errors && !s.reject_file.empty()) {
            throw UsageError(
                "--reject-file collects skipped rows: it needs --exception-mode "
                "ignore, not strict");
        }
    } else if (given.count("exceptionmode") != 0) {
        s.ignore_errors = s.options.exception_mode == ExceptionMode::ignore;
        if (!s.ignore_errors && !s.reject_file.empty()) {
            throw UsageError(
                "--reject-file collects skipped rows: it needs exceptionmode=ignore, not "
                "strict");
        }
    }
    if (!s.reject_file.empty()) {
        s.ignore_errors = true;
    }

    if (const auto parallel = args.get_int("parallel", 1, 64)) {
        s.parallel = static_cast<std::size_t>(*parallel);
    } else if (s.async && given.count("async_load_parallelism") != 0) {
        s.parallel = s.options.async_load_parallelism;
    } else if (given.count("connectionmaxactive") != 0) {
        s.parallel = s.options.connection_max_active;
    }
    // --option sets what --parallel sets: the same bound on connections.
    if (s.parallel > 64) {
        throw UsageError(
            std::string("--option ") +
            (s.async && given.count("async_load_parallelism") != 0 ? "async_load_parallelism"
                                                                   : "connectionmaxactive") +
            "=" + std::to_string(s.parallel) + ": at most 64 connections, as --parallel");
    }
    if (s.parallel > 1 && s.batch_size == 0 && !s.async) {
        // Parallel connections need independent units of work.
        s.batch_size = s.options.batch_size;
    }
    refuse_unsplittable_encoding(s);
    return s;
}

}  // namespace pg_ingest::cli
