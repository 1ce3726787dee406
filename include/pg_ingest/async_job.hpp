// pg_ingest async load jobs, one job at a time: thin typed wrappers over the extension's SQL
// functions (ingest.begin_async_load, submit/cancel/retry/wait, get_async_load_job).
// AsyncLoader (async_loader.hpp) builds a streaming loader on top of these.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/qualified_name.hpp>

namespace pg_ingest {

// The job states as users know them from Relyt (ingest.job_state):
//   INIT --submit--> READY --worker--> LOADING --> FINISH | FAIL;  FAIL --retry--> READY;
//   INIT/READY/LOADING --cancel--> CANCEL.
enum class JobState { init, ready, loading, finish, fail, cancel };

// "INIT", "READY", ... as the server spells them.
PG_INGEST_API std::string_view to_string(JobState state) noexcept;
// Parses the server's spelling (case-insensitive). Throws pg_ingest::Error for anything else.
PG_INGEST_API JobState parse_job_state(std::string_view text);
// FINISH, FAIL and CANCEL: nothing happens to the job any more unless someone retries it.
PG_INGEST_API bool is_ended(JobState state) noexcept;

// Arguments of ingest.begin_async_load(); defaults are the server's.
struct AsyncJobSpec {
    QualifiedName target;
    std::string conflict_mode = "upsert";       // none | upsert | update | ignore | strict
    std::vector<std::string> conflict_columns;  // empty: the server picks (primary key, ...)
    std::vector<std::string> update_columns;    // empty: every loaded non-key column
    std::string job_key;                        // empty: no key (no idempotency)
    std::string overwrite = "none";             // none | table | partition
    std::optional<QualifiedName> overwrite_partition;
    std::string exception_mode = "strict";  // strict | ignore
    std::optional<std::int64_t> reject_limit;
    bool keep_staging = false;  // the connectors' clean_temp_data=false
    // The columns that will be staged and loaded, in staging order; empty: every insertable
    // column. Columns left out get their defaults when the job applies.
    std::vector<std::string> columns;
    // Ordered staging (pg_ingest 0.4.0): the staging table numbers its rows by the session's
    // ingest.stage_chunk, then by the order each session wrote them, and the job applies them
    // in that order. COPY into it must name its columns. false: not passed to the server.
    bool ordered = false;
};

// What begin_async_load returns. `staging` is the staging table as regclass text (already
// quoted as needed by the server), empty once the server has dropped it.
struct BegunJob {
    std::int64_t id = 0;
    std::string staging;
    JobState state = JobState::init;
};

// One row of ingest.get_async_load_job(): a snapshot, not live. Text columns that are NULL on
// the server are empty strings; timestamps are the server's text form.
struct AsyncJob {
    std::int64_t id = 0;
    std::string job_key;
    std::string owner;
    std::string target;
    JobState state = JobState::init;
    std::string conflict_mode;
    std::string exception_mode;
    std::string overwrite;
    std::string staging;
    std::int64_t rows_staged = 0;
    std::int64_t bytes_staged = 0;
    std::int64_t rows_inserted = 0;
    std::int64_t rows_updated = 0;
    std::int64_t rows_skipped = 0;
    std::int64_t rows_rejected = 0;
    std::int64_t rows_applied = 0;  // live progress while LOADING
    std::int64_t attempts = 0;      // runs since submit or the last retry
    std::string error_sqlstate;
    std::string error_message;
    std::string created_at;
    std::string submitted_at;
    std::string started_at;
    std::string finished_at;
};

// All functions below use the given connection from the calling thread only, block until the
// server answers or the connection's deadline passes (Connection::set_deadline; bound lock
// waits with statement_timeout too), and
// throw pg_ingest::Error with the server's SQLSTATE: 42704 for an unknown id or another role's
// job, 55000 for a call in the wrong state, 42P01/42703/... for a bad target or column.

// Throws Error 42883 with a clear message and a hint when the database has no async load
// support (pg_ingest not installed, or older than 0.2.0). Cheap: one catalog query.
PG_INGEST_API void require_async_load(Connection& connection);

// Creates a job (INIT) and its staging table, or returns the caller's existing job with the
// same job_key, in whatever state it is now: callers must look at `state` before staging.
PG_INGEST_API BegunJob begin_async_load(Connection& connection, const AsyncJobSpec& spec);
// INIT -> READY; returns the new state.
PG_INGEST_API JobState submit_async_load(Connection& connection, std::int64_t id);
// INIT/READY/LOADING -> CANCEL; returns the new state.
PG_INGEST_API JobState cancel_async_load(Connection& connection, std::int64_t id);
// FAIL -> READY; returns the new state.
PG_INGEST_API JobState retry_async_load(Connection& connection, std::int64_t id);

// One job; throws Error 42704 when it does not exist or belongs to another role.
PG_INGEST_API AsyncJob get_async_load_job(Connection& connection, std::int64_t id);
// The jobs the role can see, newest first; optionally only those loading into `target`.
PG_INGEST_API std::vector<AsyncJob> list_async_load_jobs(
    Connection& connection, const std::optional<QualifiedName>& target = std::nullopt);

// Blocks until every job in `ids` has ended (FINISH/FAIL/CANCEL) or `deadline` passes, and
// returns the jobs as last read. Wakes on NOTIFY ingest_async_load (the connection LISTENs on
// it during the call only and drops what it received when it returns) and also re-reads the
// states every `poll_interval`, so a lost notification costs at most one interval. Between reads it
// waits on the socket, not in a statement, so the deadline holds to within one query's time. A read
// still unanswered 5 s after `deadline` (or after the call, when the deadline had passed; a silent
// network) is given up as Connection::set_deadline describes: Error 08006, the connection closed.
// Throws Error 42704 for an unknown id; never throws on timeout (look at the states).
PG_INGEST_API std::vector<AsyncJob> wait_async_load_jobs(
    Connection& connection, const std::vector<std::int64_t>& ids,
    std::chrono::steady_clock::time_point deadline,
    std::chrono::milliseconds poll_interval = std::chrono::seconds(1));

}  // namespace pg_ingest
