#include <pg_ingest/async_loader.hpp>

#include <algorithm>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include "async_job_wait.hpp"
#include "chunk_spool.hpp"
#include "exec.hpp"
#include "log_hook.hpp"
#include "staging_worker.hpp"

namespace pg_ingest {

namespace {

using Clock = Connection::Clock;
using detail::StagingWorker;

// The order columns of an ordered staging table (pg_ingest's job_catalog.hpp).
constexpr const char* k_order_chunk = "_pg_ingest_chunk";
constexpr const char* k_order_row = "_pg_ingest_row";

// The longest back-off between two retries (as the Writer's).
constexpr std::chrono::milliseconds k_max_retry_wait{30000};

// How long past a call's deadline the control connection waits for an answer before it is
// closed. The server's statement_timeout, set to the deadline, normally answers first; this
// bounds a silent network.
constexpr std::chrono::seconds k_silence_grace{2};

// How often a wait on one staging connection looks at the others for an error.
constexpr std::chrono::milliseconds k_worker_slice{20};

Error loader_error(const std::string& message) {
    return Error("AsyncLoader: " + message);
}

// A job of this loader that the server no longer has: only ended jobs are removed (after
// ingest.job_retention), and this loader never saw how it ended, so it cannot say.
Error removed_unseen(std::int64_t id) {
    return Error("AsyncLoader: async load job " + std::to_string(id) +
                     " was removed by the server before this loader saw it end",
                 "42704",
                 "The server removes ended jobs after ingest.job_retention (or an "
                 "administrator deleted it); whether this one finished or failed is not known.",
                 "Check the target table for the job's rows, and keep ingest.job_retention "
                 "longer than a loader runs.",
                 true);
}

// A call's deadline passed while it waited. The loader stays usable: the state is kept so
// that repeating the call carries on where it stopped.
Error deadline_passed(const std::string& what) {
    return Error("AsyncLoader: deadline passed " + what, "57014", "",
                 "The loader is still usable: call it again, with a later deadline, to carry on.",
                 true);
}

std::string job_key_for(const std::string& key, int part) {
    if (key.empty()) {
        return "";
    }
    return part == 1 ? key : key + "#" + std::to_string(part);
}

}  // namespace

AsyncLoaderOptions AsyncLoaderOptions::from(const Options& options, QualifiedName target) {
    options.validate();
    AsyncLoaderOptions loader;
    loader.job.target = std::move(target);
    if (loader.job.target.schema.empty()) {
        loader.job.target.schema = options.target_schema;
    }
    loader.job.conflict_mode = to_string(options.conflict_mode);
    loader.job.conflict_columns = options.conflict_columns;
    loader.job.update_columns = options.update_columns;
    loader.job.exception_mode = to_string(options.exception_mode);
    loader.job.keep_staging = !options.clean_temp_data;
    loader.parallelism = options.async_load_parallelism;
    loader.queue_size = options.async_load_queue_size;
    loader.max_temp_file_size = options.max_temp_file_size;
    loader.connect_timeout = options.connect_timeout;
    loader.max_retry_times = options.max_retry_times;
    loader.retry_wait_time = options.retry_wait_time;
    loader.verbose = options.verbose;
    return loader;
}

struct AsyncLoader::Impl {
    ConnectionOptions connection_options;
    AsyncLoaderOptions options;
    Connection control;
    std::vector<std::unique_ptr<StagingWorker>> workers;
    std::size_t next_worker = 0;

    std::string unit_key;
    int part = 0;
    bool roll_due = false;  // the open job reached max_temp_file_size: submit it, open the next
    std::optional<BegunJob> open;  // the job being staged
    bool skipping = false;         // the open job was submitted by an earlier run
    std::string copy_sql;
    std::uint64_t open_bytes = 0;
    // Whether a job's outcome depends on the order of its rows (not for a strict append), and
    // whether the server can stage in order (pg_ingest 0.4.0).
    bool order_matters = false;
    bool server_orders = false;
    bool open_ordered = false;     // the open job's staging table is ordered
    std::size_t open_workers = 1;  // staging connections the open job may use
    std::int64_t open_chunks = 0;  // chunks of the open job so far (ordered: their numbers)

    std::vector<std::int64_t> job_ids;
    std::vector<std::int64_t> pending;  // submitted, not seen ended
    // Jobs seen ended, as last read: never read again, so that the server removing them after
    // ingest.job_retention does not fail a later wait().
    std::map<std::int64_t, AsyncJob> ended;
    std::uint64_t rows = 0;
    std::uint64_t bytes = 0;
    std::uint64_t skipped = 0;
    // Rows given to stage() so far, skipped chunks included: a staging error names its row by
    // this count (Error::row_number()).
    std::uint64_t rows_given = 0;
    // Per job this loader opened: the number, in that count, of the job's first row.
    std::map<std::int64_t, std::uint64_t> first_rows;
    // Rows of the chunks skipped for the open job (one an earlier run submitted): checked
    // against what that run staged when the job is left (check_skipped()).
    std::uint64_t skipped_rows = 0;
    std::exception_ptr failure;
    bool resumable = false;  // the error being thrown is a passed deadline: state kept
    // The last bounded() statement was cancelled by the statement_timeout it set: it had no
    // effect (unlike one given up on by the client, whose outcome is unknown).
    bool cancelled_by_server = false;

    // Retries (max_retry_times > 0): the open job's chunks are spooled to a local file; after a
    // transient failure the staging connections are closed (their staging rolled back) and the
    // job is emptied and staged again from the spool before anything else.
    detail::ChunkSpool spool;
    bool replay_due = false;      // the open job must be staged again from the spool
    bool truncate_due = false;    // ... after emptying its staging table
    std::size_t replay_next = 0;  // spooled chunks staged again so far
    bool staging_done = false;    // the open job's staging committed on every connection
    // A submit_async_load was sent whose outcome is unknown (its answer was lost, or it may
    // still commit): cleared only when the job is closed, or when our statement_timeout
    // cancelled the only submit ever sent. submit_pid: the backend that ran the last one.
    bool submit_sent = false;
    int submit_pid = 0;
    // Backends of the staging connections closed by recover() (pid and start: a pid alone may
    // name another session by the time it is ended).
    std::vector<detail::StagingWorker::Backend> lost_backends;
    // The job a failed open_job() attempt began: the retry, or the call repeated after a passed
    // deadline, goes on with it rather than begin another (a keyless one would be left
    // behind). Any job of this loader with the same key will do (a keyless one is INIT, empty).
    std::optional<BegunJob> begun;
    std::string begun_key;
    int retries_left = 0;  // for the open job (or the wait() under way)
    std::chrono::milliseconds retry_wait{0};
    std::uint64_t retries = 0;

    Impl(ConnectionOptions connection, AsyncLoaderOptions loader_options)
        : connection_options(std::move(connection)),
          options(std::move(loader_options)),
          control(Connection::connect(connection_options, options.connect_timeout)) {
        detail::DeadlineScope bound(control, Clock::now() + options.connect_timeout);
        require_async_load(control);
        // A strict job fails on any duplicate key or bad row, in whatever order it meets it.
        order_matters =
            !((options.job.conflict_mode == "none" || options.job.conflict_mode == "strict") &&
              options.job.exception_mode == "strict");
        server_orders =
            control
                .execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN "
                    "pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = "
                    "'ingest' AND p.proname = 'begin_async_load' AND 'ordered' = "
                    "ANY (p.proargnames))")
                .get(0, 0) == std::optional<std::string>("t");
    }

    // A job without a key that is left open can never be resumed (nothing names it again):
    // once the staging streams are aborted it is cancelled, which drops its staging table.
    // Best effort, for at most 5 seconds.
    ~Impl() {
        workers.clear();
        // A keyless job that a failed open_job() began and left empty is cancelled too.
        const std::optional<BegunJob> orphan =
            open ? open : (begun && begun_key.empty() ? begun : std::nullopt);
        const bool keyless = open ? unit_key.empty() : true;
        if (orphan && keyless && orphan->state == JobState::init && !(open && skipping) &&
            !submit_sent && control.is_open()) {
            try {
                detail::exec_until(
                    control, "SELECT ingest.cancel_async_load(" + std::to_string(orphan->id) + ")",
                    nullptr, Clock::now() + std::chrono::seconds(5));
            } catch (...) {  // the job stays INIT; nothing else is at stake
            }
        }
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    [[noreturn]] void timed_out(const std::string& what) {
        resumable = true;
        throw deadline_passed(what);
    }

    // Runs `body`; any error but a passed deadline (ours, or the statement_timeout that
    // bounded() set, both of which leave the state as it was) fails the loader for good.
    template <typename Body>
    auto guarded(Body&& body) {
        if (failure) {
            std::rethrow_exception(failure);
        }
        resumable = false;
        try {
            return body();
        } catch (...) {
            if (!resumable) {
                failure = std::current_exception();
            }
            throw;
        }
    }

    // Runs `body`, whose statements on the control connection are given up when the server
    // has not answered k_silence_grace after `deadline` (a silent network): the connection is
    // closed and the call ends as a passed deadline. The statement's outcome is then unknown:
    // each caller's repeat must find out (or be harmless when repeated).
    template <typename Body>
    auto watched(Clock::time_point deadline, const std::string& what, Body&& body) {
        const Clock::time_point bound = detail::grace_after(deadline, k_silence_grace);
        detail::DeadlineScope scope(ctl(bound), bound);
        try {
            return body();
        } catch (const Error& error) {
            if (bound != Clock::time_point::max() && error.sqlstate() == "08006" &&
                !error.connection_usable() && !control.is_open() && Clock::now() >= bound) {
                timed_out(what + " (the server did not answer; the control connection was closed)");
            }
            throw;
        }
    }

    // A control statement, bounded by `deadline` through statement_timeout (the server
    // answering slowly or waiting for a lock) and by watched() (a silent network).
    template <typename Body>
    auto bounded(Clock::time_point deadline, const char* what, Body&& body) {
        cancelled_by_server = false;
        const auto left =
            deadline == Clock::time_point::max()
                ? std::numeric_limits<std::int64_t>::max()
                : std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            timed_out(what);
        }
        // statement_timeout takes at most INT_MAX ms (~24 days); a later deadline bounds nothing.
        if (left > std::numeric_limits<int>::max()) {
            return body();
        }
        return watched(deadline, what, [&] {
            control.execute("SET statement_timeout = " + std::to_string(left));
            struct Reset {
                Connection& connection;
                ~Reset() {
                    try {
                        if (connection.is_open()) {
                            connection.set_deadline(Clock::now() + k_silence_grace);
                            connection.execute("RESET statement_timeout");
                        }
                    } catch (...) {  // the next bounded() sets it again; the loader fails otherwise
                    }
                }
            } reset{control};
            try {
                return body();
            } catch (const Error& error) {
                // Our statement_timeout: the statement was rolled back, nothing changed.
                if (error.sqlstate() == "57014" && control.is_open()) {
                    resumable = true;
                    cancelled_by_server = true;
                }
                throw;
            }
        });
    }

    // The control connection, connected again when a transient failure closed it: given up at
    // `deadline` (watched() passes the call's deadline plus k_silence_grace) or after
    // connect_timeout, whichever comes first. Given up at the deadline, the call ends as a
    // passed deadline (the repeated call connects again).
    Connection& ctl(Clock::time_point deadline = Clock::time_point::max()) {
        if (!control.is_open()) {
            const Clock::time_point by =
                detail::connect_deadline(deadline, options.connect_timeout);
            try {
                control = Connection::connect(connection_options, by);
            } catch (const Error& error) {
                if (by == deadline && deadline != Clock::time_point::max() && error.retryable() &&
                    Clock::now() >= by) {
                    timed_out("while connecting the control connection again");
                }
                throw;
            }
        }
        return control;
    }

    void log(LogLevel level, const std::string& message) const noexcept {
        detail::log_to(options.on_log, options.verbose, level, message);
    }

    std::string job_label(std::int64_t id) const {
        std::string label = "async load job " + std::to_string(id);
        if (!unit_key.empty()) {
            label += " (key '" + job_key_for(unit_key, part) + "')";
        }
        return label;
    }

    void reset_retries() {
        retries_left = options.max_retry_times;
        retry_wait = std::min(options.retry_wait_time, k_max_retry_wait);
    }

    // Runs `body`, and again after each transient failure (Error::retryable()) while retries
    // are left: recover() first. A passed deadline is never retried (the state is kept for the
    // repeated call).
    template <typename Body>
    auto retrying(Clock::time_point deadline, Body&& body) {
        while (true) {
            try {
                return body();
            } catch (const Error& error) {
                if (resumable || !error.retryable() || retries_left <= 0) {
                    throw;
                }
                log(LogLevel::warning,
                    "transient error [" + error.sqlstate() + "]: " + error.what() + "; retrying (" +
                        std::to_string(options.max_retry_times - retries_left + 1) + " of " +
                        std::to_string(options.max_retry_times) + ")");
                recover(deadline);
            }
        }
    }

    // Closes the staging connections (what they staged of the open job and did not commit is
    // rolled back) and marks the open job to be staged again from the spool, unless its staging
    // had committed everywhere; then backs off.
    void recover(Clock::time_point deadline) {
        --retries_left;
        ++retries;
        // Closes the staging connections, breaking off a statement in progress: what they
        // staged and did not commit is rolled back. Stopped first, so that each backend read
        // is final (a worker stopped before its setup query records none: it holds no lock).
        const bool restage = open && !skipping && !staging_done;
        for (const auto& worker : workers) {
            worker->stop();
            if (auto backend = worker->backend(); !backend.started.empty() && restage) {
                lost_backends.push_back(std::move(backend));
            }
        }
        workers.clear();
        if (restage) {
            replay_due = true;
            truncate_due = true;
            replay_next = 0;
        }
        const auto wait = retry_wait;
        retry_wait = std::min(retry_wait * 2, k_max_retry_wait);
        if (deadline != Clock::time_point::max() && Clock::now() + wait >= deadline) {
            std::this_thread::sleep_until(deadline);
            timed_out("while backing off after a transient failure");
        }
        std::this_thread::sleep_for(wait);
    }

    // The staging connection for the open job's next chunk (round robin; opened as needed).
    // The turn passes on only when that connection takes a chunk (advance_worker()).
    // Asked twice for one turn (room, then the push) it gives the same connection.
    StagingWorker& next_staging_worker() {
        const std::size_t turn = next_worker % std::max<std::size_t>(open_workers, 1);
        while (workers.size() <= turn) {
            workers.push_back(
                std::make_unique<StagingWorker>(connection_options, options.connect_timeout));
        }
        return *workers[turn];
    }

    void advance_worker() { ++next_worker; }

    // Waits for `ready(until)` (a push or a drain on one staging connection, bounded by
    // `until`) in short slices, checking every staging connection between them: an error on
    // any of them (rethrown here, so that a retry starts) ends the wait at once, rather than
    // after the connection waited for stalls out (a silent network: its 5-minute bound).
    // False when `deadline` passes first.
    template <typename Ready>
    bool wait_for_worker(Clock::time_point deadline, Ready&& ready) {
        while (true) {
            for (const auto& worker : workers) {
                worker->check();
            }
            if (ready(std::min(deadline, Clock::now() + k_worker_slice))) {
                return true;
            }
            if (Clock::now() >= deadline) {
                return false;
            }
        }
    }

    // Gives `task` to the next staging connection (see wait_for_worker()); false when
    // `deadline` passed first (the task was not taken). A connection the task opens is given
    // up at `call_deadline` plus k_silence_grace.
    bool push_next(StagingWorker::Task& task, Clock::time_point deadline,
                   Clock::time_point call_deadline) {
        task.connect_by = detail::grace_after(call_deadline, k_silence_grace);
        StagingWorker& worker = next_staging_worker();
        if (!wait_for_worker(deadline,
                             [&](Clock::time_point until) { return worker.push(task, until); })) {
            return false;
        }
        advance_worker();
        return true;
    }

    // Waits until the next staging connection can take a chunk without blocking; false when
    // `deadline` passes first.
    bool room_for_next(Clock::time_point deadline) {
        StagingWorker& worker = next_staging_worker();
        return wait_for_worker(deadline,
                               [&](Clock::time_point until) { return worker.wait_room(until); });
    }

    // Stages the open job again from the spool after recover(); resumable after a passed
    // deadline.
    void replay(Clock::time_point deadline) {
        if (!replay_due) {
            return;
        }
        if (truncate_due) {
            // A closed staging connection whose backend has not noticed (a silent network, or
            // idle in its transaction) would hold its lock on the staging table until TCP gives
            // up: end those backends first (the same role may).
            if (!lost_backends.empty()) {
                std::vector<std::int64_t> pids;
                std::string started;
                for (const auto& backend : lost_backends) {
                    pids.push_back(backend.pid);
                    started += (started.empty() ? "{" : ",") + backend.started;
                }
                bounded(deadline, "while ending the backends of lost staging connections", [&] {
                    return ctl().execute_params(
                        "SELECT pg_catalog.pg_terminate_backend(a.pid) FROM "
                        "pg_catalog.pg_stat_activity a, ROWS FROM "
                        "(pg_catalog.unnest($1::int[]), pg_catalog.unnest($2::numeric[])) AS "
                        "l(pid, started) WHERE a.pid = l.pid AND "
                        "EXTRACT(epoch FROM a.backend_start) = l.started AND a.usename = "
                        "CURRENT_USER AND a.pid <> pg_catalog.pg_backend_pid()",
                        {detail::id_list_literal(pids), started + "}"});
                });
                lost_backends.clear();
            }
            bounded(deadline, "while emptying a staging table to stage it again",
                    [&] { return ctl().execute("TRUNCATE " + open->staging); });
            truncate_due = false;
        }
        while (replay_next < spool.size()) {
            detail::ChunkSpool::Chunk chunk = spool.read(replay_next);
            StagingWorker::Task task;
            task.job = open->id;
            task.copy_sql = copy_sql;
            task.data = std::move(chunk.data);
            task.chunk = chunk.number;
            task.first_row = chunk.first_row;
            describe_lines(task);
            if (!push_next(task, deadline, deadline)) {
                timed_out("while staging job " + std::to_string(open->id) +
                          " again after a transient failure");
            }
            ++replay_next;
        }
        replay_due = false;
    }

    // How the server counts the lines of a chunk in the loader's format (see Task::csv).
    void describe_lines(StagingWorker::Task& task) const {
        task.csv = options.format.format == "csv";
        task.quote = options.format.quote && !options.format.quote->empty()
                         ? (*options.format.quote)[0]
                         : '"';
    }

    // Forgets the open job's retry state (a new job, or the old one submitted).
    void close_job() {
        open.reset();
        skipped_rows = 0;
        spool.clear();
        replay_due = truncate_due = staging_done = submit_sent = false;
        submit_pid = 0;
        replay_next = 0;
        lost_backends.clear();
    }

    // Takes the jobs seen ended (by wait() or hold_back()) out of `pending`: they are never
    // read again (the server may have removed them).
    void forget_ended() {
        pending.erase(std::remove_if(pending.begin(), pending.end(),
                                     [&](std::int64_t id) { return ended.count(id) != 0; }),
                      pending.end());
    }

    // Holds back while queue_size jobs are submitted and not ended.
    void hold_back(Clock::time_point deadline) {
        forget_ended();
        if (pending.size() < options.queue_size) {
            return;
        }
        // A pending job the server no longer has was removed after ingest.job_retention (only
        // ended jobs are): it counts as ended, and is left out of `jobs`.
        const auto jobs = watched(deadline, "while waiting for a queued job to end", [&] {
            return detail::wait_for_jobs(ctl(), pending, deadline, options.poll_interval,
                                         options.queue_size - 1, true);
        });
        pending.clear();
        for (const auto& job : jobs) {
            if (is_ended(job.state)) {
                ended[job.id] = job;  // as last read, for wait()
            } else {
                pending.push_back(job.id);
            }
        }
        if (pending.size() >= options.queue_size) {
            timed_out("while " + std::to_string(pending.size()) + " jobs were queued");
        }
    }

    // A job found ended at begin() (an earlier run's): read how it ended now, so that wait()
    // reports it even if ingest.job_retention removes it before then. One already removed is
    // left to wait(), which says its outcome is unknown.
    void remember_ended(std::int64_t id, Clock::time_point deadline) {
        try {
            ended[id] = bounded(deadline, "while reading an ended job",
                                [&] { return get_async_load_job(ctl(), id); });
        } catch (const Error& error) {
            if (error.sqlstate() != "42704") {
                throw;
            }
        }
    }

    void open_job(Clock::time_point deadline) {
        close_job();
        reset_retries();
        if (begun && begun_key != job_key_for(unit_key, part)) {
            begun.reset();  // a keyed job of another unit: a restart with its key resumes it
        }
        retrying(deadline, [&] { open_job_once(deadline); });
        begun.reset();
    }

    void open_job_once(Clock::time_point deadline) {
        hold_back(deadline);
        AsyncJobSpec spec = options.job;
        spec.columns = options.columns;
        spec.job_key = job_key_for(unit_key, part);
        spec.ordered = order_matters && server_orders && options.parallelism > 1;
        if (!begun) {
            begun = bounded(deadline, "while beginning a job", [&] {
                try {
                    return begin_async_load(ctl(), spec);
                } catch (const Error& error) {
                    // 42701: the target has a loaded column named like an order column; stage it
                    // unordered (over one connection) rather than not at all.
                    if (!spec.ordered || error.sqlstate() != "42701" || !control.is_open()) {
                        throw;
                    }
                    spec.ordered = false;
                    return begin_async_load(ctl(), spec);
                }
            });
            begun_key = spec.job_key;
        }
        const BegunJob job = *begun;
        open_bytes = 0;
        skipping = job.state != JobState::init;
        // Its rows are the next ones given to stage(), staged or (an earlier run's) skipped.
        first_rows[job.id] = rows_given + 1;
        if (skipping) {
            log(LogLevel::info, job_label(job.id) + " was submitted by an earlier run (" +
                                    std::string(to_string(job.state)) + "): its data is skipped");
            open = job;
            // Staged and submitted by an earlier run: never stage it again; report it.
            if (std::find(job_ids.begin(), job_ids.end(), job.id) == job_ids.end()) {
                job_ids.push_back(job.id);
                if (!is_ended(job.state)) {
                    pending.push_back(job.id);
                } else if (ended.count(job.id) == 0) {
                    remember_ended(job.id, deadline);
                }
            }
            return;
        }
        if (job.staging.empty()) {
            throw Error(
                "AsyncLoader: job " + std::to_string(job.id) + " is INIT but has no staging table",
                "55000", "",
                "The job cannot be staged: cancel it (ingest.cancel_async_load) or use "
                "another key.",
                true);
        }
        // An INIT job may hold part of an earlier run's data: start it afresh.
        bounded(deadline, "while emptying a staging table",
                [&] { return ctl().execute("TRUNCATE " + job.staging); });
        // The staging table says whether it is ordered: a resumed job keeps what the run that
        // began it chose. An ordered table needs a column list (its order columns are filled
        // by their defaults).
        const Result layout = bounded(deadline, "while reading a staging table", [&] {
            return ctl().execute_params(
                "SELECT a.attname, a.attidentity <> '' FROM pg_catalog.pg_attribute a WHERE "
                "a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY "
                "a.attnum",
                {job.staging});
        });
        bool ordered = false;
        for (std::size_t row = 0; row < layout.rows(); ++row) {
            ordered = ordered || (layout.get(row, 0) == std::optional<std::string>(k_order_row) &&
                                  layout.get(row, 1) == std::optional<std::string>("t"));
        }
        std::vector<std::string> staged = options.columns;
        if (ordered && staged.empty()) {
            for (std::size_t row = 0; row < layout.rows(); ++row) {
                const std::string name = layout.get(row, 0).value_or("");
                if (name != k_order_row && name != k_order_chunk) {
                    staged.push_back(name);
                }
            }
        }
        std::string columns;
        for (const auto& column : staged) {
            columns += (columns.empty() ? " (" : ", ") + quote_identifier(column);
        }
        if (!columns.empty()) {
            columns += ")";
        }
        open_ordered = ordered;
        open_workers = ordered || !order_matters ? options.parallelism : 1;
        open_chunks = 0;
        copy_sql = "COPY " + job.staging + columns + " FROM STDIN WITH (" +
                   options.format.sql_options() + ")";
        open = job;  // last: a failed step above leaves no half-opened job
        log(LogLevel::info,
            job_label(job.id) + " begun into " + options.job.target.quoted() + ", staging " +
                job.staging +
                (open_workers > 1 ? " over " + std::to_string(open_workers) + " connections" +
                                        (ordered ? ", ordered" : "")
                                  : ""));
    }

    // Submits the open job. Repeatable after a passed deadline: finishing a stream that is
    // already finished is a no-op.
    void submit_open(Clock::time_point deadline) {
        if (!open) {
            return;
        }
        check_skipped(deadline);
        if (!skipping) {
            const auto landed = [&]() -> std::optional<JobState> {
                // The backend that ran the lost submit may still be running it (a silent
                // network): end it, waiting up to 10 s, so that the state read is final.
                if (submit_pid != 0 && submit_pid != control.backend_pid()) {
                    bounded(deadline, "while ending the backend of a lost submit", [&] {
                        return ctl().execute_params(
                            "SELECT pg_catalog.pg_terminate_backend(a.pid, 10000) FROM "
                            "pg_catalog.pg_stat_activity a WHERE a.pid = $1::int AND a.usename "
                            "= CURRENT_USER AND a.state = 'active' AND a.query = $2",
                            {std::to_string(submit_pid), detail::submit_statement(open->id)});
                    });
                }
                const AsyncJob job = bounded(deadline, "while reading a job's state",
                                             [&] { return get_async_load_job(ctl(), open->id); });
                if (job.state == JobState::init) {
                    return std::nullopt;
                }
                return job.state;
            };
            const JobState state = retrying(deadline, [&] {
                bool resending = false;
                if (submit_sent) {
                    // The answer to an earlier submit was lost: it may have landed, and a
                    // submitted job's staging must not be touched again.
                    if (const auto state = landed()) {
                        return *state;
                    }
                    resending = true;
                }
                replay(deadline);
                // Handed out in rounds: a connection whose queue is stalled must not keep a
                // later one from getting its finish (and showing its error).
                std::vector<bool> given(workers.size(), false);
                if (!wait_for_worker(deadline, [&](Clock::time_point until) {
                        bool all = true;
                        for (std::size_t i = 0; i < workers.size(); ++i) {
                            if (!given[i]) {
                                StagingWorker::Task finish;
                                finish.job = open->id;
                                finish.finish = true;
                                given[i] = workers[i]->push(finish, Clock::now());
                                all = all && given[i];
                            }
                        }
                        if (!all) {
                            std::this_thread::sleep_until(until);
                        }
                        return all;
                    })) {
                    timed_out("while the staging connections finished job " +
                              std::to_string(open->id));
                }
                for (auto& worker : workers) {
                    if (!wait_for_worker(deadline, [&](Clock::time_point until) {
                            return worker->drain(until);
                        })) {
                        timed_out("while the staging connections finished job " +
                                  std::to_string(open->id));
                    }
                }
                staging_done = true;
                try {
                    return bounded(deadline, "while submitting a job", [&] {
                        Connection& connection = ctl();
                        submit_sent = true;
                        submit_pid = connection.backend_pid();
                        return submit_async_load(connection, open->id);
                    });
                } catch (const Error& error) {
                    if (cancelled_by_server && !resending) {
                        submit_sent = false;  // our statement_timeout cancelled the only submit
                    } else if (resending && error.sqlstate() == "55000") {
                        // The lost submit committed after the state was read as INIT.
                        if (const auto state = landed()) {
                            return *state;
                        }
                    }
                    throw;
                }
            });
            job_ids.push_back(open->id);
            if (!is_ended(state)) {
                pending.push_back(open->id);
            }
            log(LogLevel::info, job_label(open->id) + " submitted (" + std::to_string(open_bytes) +
                                    " bytes staged): " + std::string(to_string(state)));
        }
        close_job();
    }

    // The open job reached max_temp_file_size: submit it and open the unit's next one.
    // Exactly once holds for the same data in the same chunks. A run whose chunks for a job an
    // earlier run submitted hold another number of rows (another batch size, other files, other
    // data) would skip the wrong rows and stage the rest again: checked when it leaves such a
    // job, before anything more is staged. Only where rows were counted (stage() got them) and
    // the job was submitted (a job cancelled in INIT staged nothing that counts).
    void check_skipped(Clock::time_point deadline) {
        if (!open || !skipping || skipped_rows == 0) {
            return;
        }
        AsyncJob job;
        try {
            job = bounded(deadline, "while reading a skipped job",
                          [&] { return get_async_load_job(ctl(), open->id); });
        } catch (const Error& error) {
            if (error.sqlstate() != "42704") {
                throw;
            }
            skipped_rows = 0;  // ended and removed since (retention): nothing left to compare
            return;
        }
        if (job.submitted_at.empty() ||
            static_cast<std::uint64_t>(job.rows_staged) == skipped_rows) {
            skipped_rows = 0;
            return;
        }
        throw Error("AsyncLoader: job " + std::to_string(job.id) + " (key '" + job.job_key +
                        "') was staged by an earlier run with " + std::to_string(job.rows_staged) +
                        " rows, but this run's chunks for it hold " + std::to_string(skipped_rows),
                    "55000",
                    "Keys resume a unit only for the same data in the same chunks; the data or "
                    "its chunking (batch size, files, their order) differs from that run's, so "
                    "rows would be skipped or loaded twice. Nothing more was staged.",
                    "Run again with the same data and chunking as the run that used this key, or "
                    "use a new key.",
                    true);
    }

    void roll_over(Clock::time_point deadline) {
        check_skipped(deadline);
        submit_open(deadline);
        if (!roll_due) {
            return;
        }
        ++part;
        roll_due = false;
        try {
            open_job(deadline);
        } catch (...) {
            --part;  // opened again by the next call
            roll_due = true;
            throw;
        }
    }
};

AsyncLoader::AsyncLoader(ConnectionOptions connection, AsyncLoaderOptions options) {
    if (options.parallelism < 1 || options.queue_size < 1 || options.max_temp_file_size < 1) {
        throw Error("AsyncLoader: parallelism, queue_size and max_temp_file_size must be >= 1",
                    "22023", "", "", true);
    }
    if (options.max_retry_times < 0 || options.retry_wait_time.count() < 0) {
        throw Error("AsyncLoader: max_retry_times and retry_wait_time must be >= 0", "22023", "",
                    "", true);
    }
    if (options.format.header) {
        throw Error("AsyncLoader: staged data must not have a header line", "22023", "", "", true);
    }
    options.format.sql_options();  // validates the format now rather than at the first chunk
    m_impl = std::make_unique<Impl>(std::move(connection), std::move(options));
}

AsyncLoader::AsyncLoader(AsyncLoader&&) noexcept = default;

AsyncLoader::~AsyncLoader() = default;  // workers stop and abort their open COPY streams

void AsyncLoader::begin(const std::string& key, Connection::Clock::time_point deadline) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    // '#' marks roll-over jobs: a caller's "cp#2" would name the second job of unit "cp", and
    // one unit's data would be skipped as the other's already loaded.
    if (key.find('#') != std::string::npos) {
        throw Error("AsyncLoader: job key '" + key + "' contains '#'", "22023", "",
                    "'#' is reserved for the keys of roll-over jobs (key#2, key#3, ...); use "
                    "another separator.",
                    true);
    }
    m_impl->guarded([&] {
        m_impl->submit_open(deadline);
        m_impl->roll_due = false;
        m_impl->unit_key = key;
        m_impl->part = 1;
        m_impl->open_job(deadline);
    });
}

bool AsyncLoader::stage(std::string data, std::uint64_t rows,
                        Connection::Clock::time_point deadline) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    Impl& impl = *m_impl;
    return impl.guarded([&] {
        if (impl.roll_due) {
            impl.roll_over(deadline);  // before the chunk is taken: a timeout leaves it with us
        }
        if (!impl.open) {
            impl.resumable = true;  // misuse, not a failure: the loader stays usable
            throw Error("AsyncLoader: stage() needs begin() first", "55000", "",
                        "Call begin() with the unit's key, then stage its chunks.", true);
        }
        const std::uint64_t size = data.size();
        const bool staged = !impl.skipping;
        if (staged) {
            if (impl.submit_sent) {
                impl.resumable = true;  // misuse, not a failure: the loader stays usable
                throw Error("AsyncLoader: job " + std::to_string(impl.open->id) +
                                " may have been submitted (the answer to its submit was lost)",
                            "55000", "",
                            "Call submit(), wait() or begin() again: they find out whether it "
                            "was, and submit it if not; then stage the chunk again.",
                            true);
            }
            // An earlier call's re-staging comes first, then room on the staging connection
            // that takes the chunk: a passed deadline here leaves the chunk with the caller.
            if (!impl.retrying(deadline, [&] {
                    impl.replay(deadline);
                    return impl.room_for_next(deadline);
                })) {
                impl.timed_out("while the staging connection for the chunk still held chunks");
            }
            if (impl.open_ordered && impl.open_chunks >= std::numeric_limits<int>::max()) {
                throw Error("AsyncLoader: job " + std::to_string(impl.open->id) + " has " +
                                std::to_string(impl.open_chunks) +
                                " chunks, the most ordered staging can number",
                            "54000", "",
                            "Stage larger chunks, or lower max_temp_file_size so that units "
                            "roll over to new jobs sooner.",
                            false);
            }
            StagingWorker::Task task;
            task.job = impl.open->id;
            task.copy_sql = impl.copy_sql;
            task.chunk = impl.open_ordered ? impl.open_chunks + 1 : 0;
            task.first_row = rows > 0 ? impl.rows_given + 1 : 0;  // 0 rows: not counted
            impl.describe_lines(task);
            const bool spooled = impl.options.max_retry_times > 0;
            if (spooled) {
                // From here on the chunk is taken.
                impl.spool.append(data, task.chunk, task.first_row);
            }
            impl.open_chunks += impl.open_ordered ? 1 : 0;
            impl.staging_done = false;  // this chunk is in no committed staging yet
            task.data = std::move(data);
            try {
                impl.retrying(deadline, [&] {
                    if (impl.replay_due) {
                        impl.replay(deadline);  // the spool holds this chunk too
                    } else {
                        // Never blocks: room_for_next() found room, and only we push.
                        impl.push_next(task, Clock::time_point::max(), deadline);
                    }
                });
            } catch (const Error&) {
                // A spooled chunk is taken: a passed deadline only delays its re-staging to
                // the next call.
                if (!spooled || !impl.resumable) {
                    throw;
                }
                impl.resumable = false;
            }
            impl.rows += rows;
            impl.rows_given += rows;
            impl.bytes += size;
        } else {
            ++impl.skipped;
            impl.skipped_rows += rows;
            impl.rows_given += rows;
        }
        // Skipped chunks count too, so a restarted run rolls over at the same chunks.
        impl.open_bytes += size;
        if (impl.open_bytes >= impl.options.max_temp_file_size) {
            impl.roll_due = true;
            try {
                impl.roll_over(deadline);
            } catch (const Error&) {
                // The chunk is staged; a passed deadline only delays the roll-over to the
                // next call.
                if (!impl.resumable) {
                    throw;
                }
                impl.resumable = false;
            }
        }
        return staged;
    });
}

void AsyncLoader::submit(Connection::Clock::time_point deadline) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    m_impl->guarded([&] {
        m_impl->submit_open(deadline);
        m_impl->roll_due = false;
    });
}

std::vector<AsyncJob> AsyncLoader::wait(Connection::Clock::time_point deadline) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    return m_impl->guarded([&] {
        Impl& impl = *m_impl;
        impl.submit_open(deadline);
        impl.roll_due = false;
        std::vector<std::int64_t> open_ids;
        for (const std::int64_t id : impl.job_ids) {
            if (impl.ended.count(id) == 0) {
                open_ids.push_back(id);
            }
        }
        std::map<std::int64_t, AsyncJob> fresh;
        if (!open_ids.empty()) {
            impl.reset_retries();
            const auto read = impl.retrying(deadline, [&] {
                return impl.watched(deadline, "while waiting for jobs to end", [&] {
                    return detail::wait_for_jobs(impl.ctl(), open_ids, deadline,
                                                 impl.options.poll_interval, 0, true);
                });
            });
            for (auto job : read) {
                if (is_ended(job.state)) {
                    impl.log(LogLevel::info,
                             "async load job " + std::to_string(job.id) + " ended " +
                                 std::string(to_string(job.state)) + ": " +
                                 std::to_string(job.rows_inserted) + " inserted, " +
                                 std::to_string(job.rows_updated) + " updated, " +
                                 std::to_string(job.rows_skipped) + " skipped, " +
                                 std::to_string(job.rows_rejected) + " rejected" +
                                 (job.error_sqlstate.empty()
                                      ? std::string()
                                      : " [" + job.error_sqlstate + "] " + job.error_message));
                    impl.ended[job.id] = job;
                }
                fresh[job.id] = std::move(job);
            }
            impl.forget_ended();  // hold_back() must not read them again either
            for (const std::int64_t id : open_ids) {
                if (fresh.count(id) == 0) {
                    throw removed_unseen(id);
                }
            }
        }
        std::vector<AsyncJob> jobs;
        for (const std::int64_t id : impl.job_ids) {
            const auto found = fresh.find(id);
            jobs.push_back(found != fresh.end() ? found->second : impl.ended.at(id));
        }
        return jobs;
    });
}

const std::vector<std::int64_t>& AsyncLoader::job_ids() const {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    return m_impl->job_ids;
}

std::optional<std::uint64_t> AsyncLoader::first_row(std::int64_t job_id) const {
    if (!m_impl) {
        return std::nullopt;
    }
    const auto found = m_impl->first_rows.find(job_id);
    if (found == m_impl->first_rows.end()) {
        return std::nullopt;
    }
    return found->second;
}

std::uint64_t AsyncLoader::rows_staged() const {
    return m_impl ? m_impl->rows : 0;
}

std::uint64_t AsyncLoader::bytes_staged() const {
    return m_impl ? m_impl->bytes : 0;
}

std::uint64_t AsyncLoader::chunks_skipped() const {
    return m_impl ? m_impl->skipped : 0;
}

std::uint64_t AsyncLoader::retries() const {
    return m_impl ? m_impl->retries : 0;
}

}  // namespace pg_ingest
