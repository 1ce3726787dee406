// pg_ingest::Options — the writer / loader settings, in the vocabulary of the connectors users
// already know (AnalyticDB for PostgreSQL and Relyt Flink connectors).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// writemode: numbers as in the AnalyticDB connector (0 batch insert, 1 COPY, 2 batch upsert).
enum class WriteMode { insert = 0, copy = 1, upsert = 2 };
// conflictmode: what happens when a written key already exists.
enum class ConflictMode { upsert, update, ignore, strict };
// exceptionmode: what a data error (bad row) does to a flush.
enum class ExceptionMode { ignore, strict };

PG_INGEST_API const char* to_string(WriteMode mode) noexcept;
PG_INGEST_API const char* to_string(ConflictMode mode) noexcept;
PG_INGEST_API const char* to_string(ExceptionMode mode) noexcept;

// A value type (copyable, no I/O). Fields may be set directly from code; from_map()/set() parse
// the text form. Defaults are the connectors' defaults.
//
// Keys accepted by set() / from_map() (case-insensitive; a leading "sink." is ignored so Relyt
// keys such as sink.max_temp_file_size work as written):
//   batchsize              rows per batch (>= 1)                                 [50000]
//   batchbytes             encoded bytes per batch before a flush (>= 1)         [64 MiB]
//   batchwritetimeoutms    flush a non-empty batch this long after its first row
//                          (0 = only on size/bytes/flush())                      [50000]
//   maxretrytimes          retries of a batch after a transient error (>= 0)     [3]
//   retrywaittime          first back-off in ms, doubled per retry up to 30 s    [100]
//                          (or up to itself, when larger) (>= 0)
//   connectionmaxactive    pool size (>= 1)                                      [5]
//   conflictmode           upsert | update | ignore | strict                     [upsert]
//   writemode              0|insert|batch_insert, 1|copy, 2|upsert|batch_upsert  [1 = copy]
//   exceptionmode          ignore | strict                                       [ignore]
//   targetschema           schema of the target table                            [public]
//   casesensitive          0|1|true|false: match table/column names exactly      [0]
//   verbose                0|1|true|false: informational log messages            [0]
//   backgroundflush        0|1|true|false: a full batch is sent by the writer's
//                          own thread while write() fills the next one (at most
//                          two batches buffered); 0 = write() sends it itself    [1]
//   conflictcolumns        comma-separated key columns (default: primary key,
//                          else the only unique key)                             []
//   updatecolumns          comma-separated columns overwritten on conflict
//                          (default: every written non-key column)               []
//                          (in both lists a name in double quotes may contain a
//                          comma; a stray quote is an error)
//   flushtimeoutms         bound on one flush attempt (connect, send, commit)    [300000]
//   connecttimeoutms       bound on connecting / waiting for a pooled connection [10000]
//   async_load_parallelism parallel connections of an async loader (>= 1)        [1]
//   async_load_queue_size  queued async jobs before a loader holds back (>= 1)   [4]
//   max_temp_file_size     staged bytes before an async loader rolls over        [96 MiB]
//   clean_temp_data        0|1|true|false: drop staging when a job ends          [true]
//   usecopy                accepted for compatibility: 1 means writemode=copy, 0 changes nothing
//                          (from_map(): a writemode in the same map decides)
// An unknown key or a bad value throws pg_ingest::Error (SQLSTATE 22023) naming the key and the
// value; the object is then unchanged.
// Levels of the log lines given to a logging hook (WriterHooks::on_log,
// AsyncLoaderOptions::on_log): debug and info only with `verbose`, warning and error always.
enum class LogLevel { debug, info, warning, error };

struct PG_INGEST_API Options {
    std::size_t batch_size = 50000;
    std::size_t batch_bytes = 64u * 1024u * 1024u;
    std::chrono::milliseconds batch_write_timeout{50000};
    int max_retry_times = 3;
    std::chrono::milliseconds retry_wait_time{100};
    std::size_t connection_max_active = 5;
    ConflictMode conflict_mode = ConflictMode::upsert;
    WriteMode write_mode = WriteMode::copy;
    ExceptionMode exception_mode = ExceptionMode::ignore;
    std::string target_schema = "public";
    bool case_sensitive = false;
    bool verbose = false;
    bool background_flush = true;
    std::vector<std::string> conflict_columns;
    std::vector<std::string> update_columns;
    std::chrono::milliseconds flush_timeout{300000};
    std::chrono::milliseconds connect_timeout{10000};
    std::size_t async_load_parallelism = 1;
    std::size_t async_load_queue_size = 4;
    std::uint64_t max_temp_file_size = 96u * 1024u * 1024u;
    bool clean_temp_data = true;

    // Defaults, then every key of `settings` applied with set().
    static Options from_map(const std::map<std::string, std::string>& settings);

    // Parses and applies one setting (see the table above). Throws pg_ingest::Error.
    void set(std::string_view key, std::string_view value);

    // Checks the invariants of fields set from code (sizes >= 1, non-negative times).
    // Throws pg_ingest::Error (22023) naming the field.
    void validate() const;
};

}  // namespace pg_ingest
