// pg_ingest::AsyncLoader — streams data into async load jobs (pg_ingest 0.2.0+): stages it over
// parallel connections, submits jobs, rolls over to a new job past a staged-bytes budget, holds
// back while too many jobs are queued, and waits for them. Exactly once with caller job keys.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pg_ingest/async_job.hpp>
#include <pg_ingest/connection.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/copy_format.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/options.hpp>

namespace pg_ingest {

struct PG_INGEST_API AsyncLoaderOptions {
    // What every job is begun with (job_key is ignored: keys come from begin()).
    AsyncJobSpec job;
    // Columns present in the staged data, in order (quoted as given); empty: every staging
    // column, i.e. the target's insertable columns in table order.
    std::vector<std::string> columns;
    // How the staged bytes are written (format csv/text, delimiter, NULL, quote, encoding).
    // `header` must be false: stage() takes records only.
    CopyTextFormat format;
    std::size_t parallelism = 1;  // async_load_parallelism: staging connections
    std::size_t queue_size = 4;   // async_load_queue_size: submitted, unended jobs before holding
    std::uint64_t max_temp_file_size = 96u * 1024u * 1024u;  // bytes staged before a new job
    std::chrono::milliseconds connect_timeout{10000};
    // Re-read job states this often while waiting even without a NOTIFY.
    std::chrono::milliseconds poll_interval{1000};
    // maxretrytimes / retrywaittime: transient failures (Error::retryable()) of the staging or
    // control connections retried per job (and per wait()), after a back-off that starts at
    // retry_wait_time and doubles up to 30 s. Above 0 the open job's chunks are also written
    // to an unlinked temporary file in $TMPDIR (else /tmp), up to max_temp_file_size plus one
    // chunk, so that the job can be staged again; 0: no spool, and the first failure fails
    // the loader.
    int max_retry_times = 3;
    std::chrono::milliseconds retry_wait_time{100};
    // Log lines: a job begun, skipped (an earlier run submitted it), submitted or seen ended
    // (info, only when verbose), a transient failure retried (warning, always). Called on the
    // thread that called the loader, with no password in them; must not throw (an exception
    // is ignored). Empty: the lines go to standard error ("pg_ingest warning: ...").
    bool verbose = false;
    std::function<void(LogLevel, const std::string&)> on_log;

    // The connector vocabulary: async_load_parallelism, async_load_queue_size,
    // max_temp_file_size, clean_temp_data (keep_staging = !clean_temp_data), conflictmode,
    // conflictcolumns, updatecolumns, exceptionmode, connecttimeoutms, maxretrytimes,
    // retrywaittime, verbose. `target` is set by the
    // caller; without a schema it gets targetschema.
    static AsyncLoaderOptions from(const Options& options, QualifiedName target);
};

// Not thread-safe: call it from one thread. Move-only. Opens 1 + parallelism connections.
//
// Order: a job applies its rows in the order stage() was given them, whatever the parallelism,
// so a key repeated within a unit resolves as one connection would resolve it (last wins for
// upsert/update, first wins for ignore; rejects are numbered in that order). With more than
// one staging connection the loader begins jobs with ordered staging (ingest.stage_chunk
// numbers each chunk); a strict append, which order cannot change, is staged unordered. Either
// way each chunk is its own COPY in its connection's staging transaction (one per job). A server
// older than pg_ingest 0.4.0 has no ordered staging: the loader then stages a job that needs order
// over one connection; so does a run that resumes a job begun unordered.
//
// Keys and exactly-once: begin(key) names a unit of data (e.g. a stream checkpoint); its jobs
// are keyed `key`, `key#2`, `key#3`, ... as the unit rolls over max_temp_file_size (so a key
// may not contain '#': begin() throws Error 22023 and the loader stays usable). A loader
// restarted with the same keys and the same data in the same chunks finds the jobs of the first
// run: a job already submitted (READY, LOADING, FINISH) or ended (FAIL, CANCEL) is not staged
// again — its chunks are skipped and the job is reported by wait(); a job still in INIT (a run
// that stopped while staging) has its staging table emptied and is staged again. Without a key
// (empty string) jobs have no key and nothing protects against loading twice. Keys protect as
// long as the server keeps the jobs: ended jobs are removed after ingest.job_retention (7 days
// by default), after which the same key names a new job. wait() reads a job it has seen ended
// only once, so a removed job does not fail it (a job a restarted loader finds ended at begin()
// is read then); a job removed before the loader saw it end (by retention, or by an
// administrator) fails wait() with Error 42704 (its outcome is unknown), at every call. A
// restarted run whose chunks for a job it skips hold another number of rows than that job was
// staged with (other data, another chunking) is refused with Error 55000 when it leaves that
// job, before it stages anything more (checked where stage() is given row counts).
//
// Retries: a transient failure (a connection lost or terminated, a serialization failure or
// deadlock, too many connections, ...; see is_transient_sqlstate()) on a staging connection or
// the control connection is retried up to max_retry_times times per job, with back-off: the
// staging connections are closed at once, a statement in progress broken off (what they had
// staged is rolled back), the control connection is opened again if it was lost, and the open
// job's staging table is emptied and staged again from the local spool of its chunks, with the
// same chunk numbers (the backends of the closed staging connections are ended first, named by
// pid and start time, so that none holds the table however silent its network); a submit whose
// answer was lost is checked before anything is staged again (its backend, if still running
// that job's submit, is ended first), and while that is unresolved (a deadline passed) stage()
// throws Error 55000 and leaves the chunk with the caller: call submit(), wait() or begin() again.
// retries() counts them. A job begun without a key whose begin_async_load() answer was lost may
// leave an empty INIT job behind (cancel it); with a key the retry finds the same job.
//
// Errors: pg_ingest::Error from the server (SQLSTATE kept) or the connections; an error on a
// staging connection is rethrown by the next stage()/submit()/wait() call once it cannot be
// retried (a row the server refused is named by Error::row_number(), counted over the rows
// given to stage(), and in the message as "staged row N": each chunk is its own COPY, so the
// line the server names is found in the chunk), after which the loader is failed (every call
// throws) and the unit's open job stays INIT (never half-submitted), unless a submit whose answer
// was lost had landed (then the job is READY or beyond, with every chunk). A spool that cannot be
// written (a full disk) throws Error 58030 and fails the loader. Construction throws Error 42883
// when the database has no async load support.
class PG_INGEST_API AsyncLoader {
  public:
    // Connects the control connection and checks the extension, each bounded by
    // options.connect_timeout (a check still unanswered then closes the connection: Error
    // 08006). Staging connections are opened when first needed.
    AsyncLoader(ConnectionOptions connection, AsyncLoaderOptions options);
    AsyncLoader(AsyncLoader&&) noexcept;
    AsyncLoader& operator=(AsyncLoader&&) = delete;
    AsyncLoader(const AsyncLoader&) = delete;
    AsyncLoader& operator=(const AsyncLoader&) = delete;
    // Stops staging (a COPY in progress is aborted), closes the connections. Does not submit:
    // the open job stays INIT (unless a submit whose answer was lost had landed), so a restart
    // with the same key stages it again; an open job without a key cannot be resumed and is
    // cancelled unless a submit of it may have landed (its staging table dropped; this may
    // block up to 5 s). Never throws.
    ~AsyncLoader();

    // Starts unit `key`, submitting the previous unit's open job first (as submit() does).
    // Blocks while queue_size of this loader's jobs are submitted and not ended.
    //
    // Deadlines (begin, stage, submit, wait): waiting for the queue, for the staging COPYs to
    // finish and for the control statements (through statement_timeout: a server that answers
    // slowly or a lock wait) ends at `deadline` with Error 57014, after which the loader is
    // still usable and the same call, repeated, carries on; so do a retry's back-off and its
    // re-staging. A control statement still unanswered 2 s after the deadline (a silent
    // network) is given up the same way, and its connection closed; the repeated call opens a
    // new one and finds out what the statement did (a submit that landed is not sent again). Each
    // statement of a staging connection (a chunk's COPY, with ordered staging its set_config,
    // the job's BEGIN and COMMIT) is bounded by 5 minutes whatever the deadline: a staging
    // connection that goes silent is found out by then, or sooner by a failure elsewhere that
    // starts a retry (which breaks off the statements in progress).
    void begin(const std::string& key,
               Connection::Clock::time_point deadline = Connection::Clock::time_point::max());

    // Stages `data` — complete records in the configured format — into the unit's open job, on
    // the next staging connection (round robin; a job that needs order but was begun unordered
    // uses the first connection only). Returns false when the data was skipped
    // because an earlier run already submitted this job. Blocks while the chosen connection
    // still holds chunks (two per connection, or small ones up to 8 MiB, are held in memory;
    // unordered small chunks are sent together, one COPY for what waits). After
    // the chunk, a job past max_temp_file_size is submitted and the next one begun; if the
    // deadline passes there, the chunk is staged all the same and the next call finishes the
    // roll-over first. A 57014 thrown by stage() itself comes before the chunk is taken: stage
    // the same chunk again. Without an open unit (no begin() yet) it throws Error 55000 and the
    // loader stays usable.
    bool stage(std::string data, std::uint64_t rows,
               Connection::Clock::time_point deadline = Connection::Clock::time_point::max());

    // Finishes the staging COPYs of the open job (they commit) and submits it. No-op when
    // nothing is open.
    void submit(Connection::Clock::time_point deadline = Connection::Clock::time_point::max());

    // Submits the open job, then blocks until every job of this loader has ended or `deadline`
    // passes; returns those jobs as last read (not ended ones: the deadline passed).
    std::vector<AsyncJob> wait(
        Connection::Clock::time_point deadline = Connection::Clock::time_point::max());

    // Ids of this loader's jobs so far (submitted or found ended), in order.
    const std::vector<std::int64_t>& job_ids() const;
    // For a job this loader opened (staged, or found submitted and skipped): the number of its
    // first row among the rows given to stage() (1-based, as Error::row_number() counts), so that
    // its row n (async_load_reject.row_number; stage order) is row first_row + n - 1 of the
    // input. nullopt for another job. Never throws.
    std::optional<std::uint64_t> first_row(std::int64_t job_id) const;
    // Rows and bytes staged by this run (skipped chunks not counted).
    std::uint64_t rows_staged() const;
    std::uint64_t bytes_staged() const;
    // Chunks skipped because their job had been submitted by an earlier run.
    std::uint64_t chunks_skipped() const;
    // Transient failures retried so far (each one re-staged the open job, if it had one that
    // was not yet committed on every staging connection).
    std::uint64_t retries() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace pg_ingest
