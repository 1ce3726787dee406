// pg_ingest::Exporter — parallel COPY TO over several connections, split on an integer key.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/qualified_name.hpp>

namespace pg_ingest {

struct ExportOptions {
    QualifiedName table;
    // Column names exactly as in the catalog (they are always quoted); empty: every column.
    std::vector<std::string> columns;
    // An integer column (smallint, integer, bigint) to split on; empty: one range, one
    // connection. Rows whose key is NULL are exported with the first range.
    std::string split_key;
    // A boolean SQL expression added as `AND (where)`. Spliced verbatim into the statement:
    // pass only text you would run yourself (it runs with the connection's privileges). It is
    // read with standard_conforming_strings on: a backslash escapes only in E'...' strings.
    // Refused (42601) unless its parentheses balance outside strings and comments, as the
    // server's lexer reads them ('$' inside a name such as x$1 starts no dollar quote), and it
    // holds no ';'; also refused: a number run straight into a name or a '$' (1e5$, 0x1F$$),
    // which server versions read differently.
    std::string where;
    // Connections (and key ranges); fewer when the key spans fewer values. >= 1.
    std::size_t parallelism = 4;
    // "csv" or "text" (PostgreSQL's COPY formats).
    std::string format = "csv";
    // Bound on connecting each connection (never past `deadline`).
    std::chrono::milliseconds connect_timeout{10000};
    // Bound on the whole export: every connect, statement and COPY ends there (the connections
    // are then closed and an Error is thrown: 08006, or 08001 while connecting). max(): no
    // bound.
    Connection::Clock::time_point deadline = Connection::Clock::time_point::max();
    // Called from the worker threads, concurrently, every few thousand rows and at the end of
    // each range, with the rows and bytes since the previous call. Must be thread-safe and must
    // not throw (an exception ends the export like a callback's).
    std::function<void(std::uint64_t rows, std::uint64_t bytes)> on_progress;
};

// One half-open key range [lower, upper); a missing bound is unbounded.
struct KeyRange {
    std::optional<std::int64_t> lower;
    std::optional<std::int64_t> upper;
    bool with_nulls = false;  // also the rows whose key is NULL
    std::uint64_t rows = 0;   // filled in by the export
};

struct ExportResult {
    std::uint64_t rows = 0;
    std::uint64_t bytes = 0;
    std::vector<KeyRange> ranges;
    std::vector<std::string> column_names;  // the exported columns, in order
};

// Exports one table. All connections read one snapshot (the first connection exports it with
// pg_export_snapshot(), the others import it in REPEATABLE READ READ ONLY transactions), so
// every row visible at the start is exported exactly once even while others write.
//
// Not copyable; movable. Each run opens parallelism + 1 connections and closes them before it
// returns. Errors: pg_ingest::Error with the server's SQLSTATE (42P01 unknown table, 42703
// unknown column, 42601 bad filter, ...), 42804 when the split key is not an integer column,
// 22023 for bad options; the first error of any connection ends the whole export (the other
// connections are closed) and is rethrown after all threads have stopped.
class PG_INGEST_API Exporter {
  public:
    // Called with one row (one CopyData message, with its trailing newline) at a time.
    // Thread-safety contract: called concurrently from up to `parallelism` threads; each call
    // gets a complete row; rows of one range arrive in the server's order, rows of different
    // ranges interleave in no particular order. `range` is the index in ExportResult::ranges.
    // An exception thrown here stops the export and is rethrown by run().
    using RowCallback = std::function<void(std::size_t range, std::string_view row)>;

    // Checks the options (throws Error 22023); does not connect.
    Exporter(ConnectionOptions connection, ExportOptions options);

    // Runs the export, calling `on_row` for every row. Blocks until done (see deadline).
    ExportResult run(const RowCallback& on_row);

    // Runs the export into `out`: rows are written whole, one writer at a time, in blocks of
    // complete rows (never a partial row, never two rows interleaved). With `header`, one CSV
    // header line (the column names) comes first. Throws Error 58030 when `out` fails.
    ExportResult run(std::ostream& out, bool header = false);

  private:
    // run(), calling `on_columns` with the exported column names before the first row.
    ExportResult run_impl(const RowCallback& on_row,
                          const std::function<void(const std::vector<std::string>&)>& on_columns);

    ConnectionOptions m_connection;
    ExportOptions m_options;
};

// Splits [min, max] into at most `parts` contiguous ranges of nearly equal width, the first
// with no lower bound (and with_nulls), the last with no upper bound. Exposed for tests.
PG_INGEST_API std::vector<KeyRange> split_key_range(std::int64_t min, std::int64_t max,
                                                    std::size_t parts);

}  // namespace pg_ingest
