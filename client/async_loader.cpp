#include <pg_ingest/async_loader.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include <pg_ingest/copy.hpp>

#include "async_job_wait.hpp"
#include "exec.hpp"

namespace pg_ingest {

namespace {

using Clock = Connection::Clock;

// The order columns of an ordered staging table (pg_ingest's job_catalog.hpp).
constexpr const char* k_order_chunk = "_pg_ingest_chunk";
constexpr const char* k_order_row = "_pg_ingest_row";

// Chunks a staging connection may hold (one being sent, one waiting): bounds memory.
constexpr std::size_t k_chunks_per_worker = 2;
// Bound on sending one chunk or finishing one staging COPY.
constexpr std::chrono::minutes k_stage_timeout{5};

Error loader_error(const std::string& message) {
    return Error("AsyncLoader: " + message);
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

// One staging connection and its thread. Tasks run in order: chunks of a job go into one COPY
// stream on this connection, or with ordered staging into one COPY each inside one
// transaction; a finish task ends (commits) that stream or transaction.
class StagingWorker {
  public:
    struct Task {
        std::int64_t job = 0;
        std::string copy_sql;  // for chunks: the COPY statement of the job's staging table
        std::string data;
        bool finish = false;
        // Ordered staging: the chunk's number (ingest.stage_chunk), >= 1; 0: unordered.
        std::int64_t chunk = 0;
    };

    StagingWorker(const ConnectionOptions& options, std::chrono::milliseconds connect_timeout)
        : m_options(options), m_connect_timeout(connect_timeout), m_thread([this] { run(); }) {}

    ~StagingWorker() {
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_stopping = true;
        }
        m_changed.notify_all();
        m_thread.join();
    }

    // Blocks while the worker holds k_chunks_per_worker tasks; rethrows the worker's error.
    void push(Task task) {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_changed.wait(lock, [this] { return m_error || m_tasks.size() < k_chunks_per_worker; });
        if (m_error) {
            std::rethrow_exception(m_error);
        }
        m_tasks.push_back(std::move(task));
        m_changed.notify_all();
    }

    // Blocks until every task given so far has run or `deadline` passes (false); rethrows the
    // worker's error.
    bool drain(Clock::time_point deadline) {
        std::unique_lock<std::mutex> lock(m_mutex);
        const auto done = [this] { return m_error || (m_tasks.empty() && !m_running); };
        if (deadline == Clock::time_point::max()) {
            m_changed.wait(lock, done);
        } else if (!m_changed.wait_until(lock, deadline, done)) {
            return false;
        }
        if (m_error) {
            std::rethrow_exception(m_error);
        }
        return true;
    }

  private:
    void run() {
        std::unique_lock<std::mutex> lock(m_mutex);
        while (true) {
            m_changed.wait(lock, [this] { return m_stopping || !m_tasks.empty(); });
            if (m_stopping) {
                break;  // pending tasks are dropped; an open stream is aborted below
            }
            Task task = std::move(m_tasks.front());
            m_tasks.pop_front();
            m_running = true;
            lock.unlock();
            std::exception_ptr error;
            try {
                execute(task);
            } catch (...) {
                error = std::current_exception();
            }
            lock.lock();
            m_running = false;
            if (error) {
                m_error = error;
                m_tasks.clear();
            }
            m_changed.notify_all();
            if (m_error) {
                break;
            }
        }
        lock.unlock();
        m_stream.reset();      // CopyIn's destructor aborts an unfinished COPY (rolled back)
        m_connection.reset();  // an open staging transaction is rolled back with it
    }

    // Unordered, a job's chunks on this connection are one COPY stream (one transaction).
    // Ordered, each chunk is its own COPY after setting ingest.stage_chunk, inside one
    // transaction per job: the staging stays all or nothing either way.
    void execute(Task& task) {
        if (task.finish) {
            if (m_stream && m_stream_job == task.job) {
                m_stream->set_deadline(Clock::now() + k_stage_timeout);
                m_stream->finish();
                m_stream.reset();
            }
            if (m_in_transaction && m_stream_job == task.job) {
                m_in_transaction = false;
                const Result done = detail::exec_until(*m_connection, "COMMIT", nullptr,
                                                       Clock::now() + k_stage_timeout);
                if (done.command_tag() != "COMMIT") {  // ROLLBACK: an error went unnoticed
                    throw loader_error("staging of job " + std::to_string(task.job) +
                                       " was rolled back at COMMIT (" + done.command_tag() + ")");
                }
            }
            return;
        }
        if ((m_stream || m_in_transaction) && m_stream_job != task.job) {
            throw loader_error("internal: staging stream of job " + std::to_string(m_stream_job) +
                               " was not finished before job " + std::to_string(task.job));
        }
        if (m_in_transaction && (!m_connection || !m_connection->is_open())) {
            // Never start afresh in autocommit: the earlier chunks went with the connection.
            throw loader_error("staging connection of job " + std::to_string(m_stream_job) +
                               " was lost in its transaction");
        }
        if (!m_connection || !m_connection->is_open()) {
            m_connection.emplace(Connection::connect(m_options, m_connect_timeout));
            // Between two ordered chunks the connection is idle in its transaction, for as
            // long as the caller takes to produce the next ones: a server-side limit on that
            // must not end the staging.
            detail::exec_until(*m_connection, "SET idle_in_transaction_session_timeout = 0",
                               nullptr, Clock::now() + k_stage_timeout);
        }
        if (task.chunk > 0) {
            if (!m_in_transaction) {
                detail::exec_until(*m_connection, "BEGIN", nullptr, Clock::now() + k_stage_timeout);
                m_in_transaction = true;
                m_stream_job = task.job;
            }
            detail::exec_until(*m_connection,
                               "SELECT pg_catalog.set_config('ingest.stage_chunk', '" +
                                   std::to_string(task.chunk) + "', true)",
                               nullptr, Clock::now() + k_stage_timeout);
            CopyIn stream(*m_connection, task.copy_sql, Clock::now() + k_stage_timeout);
            stream.write(task.data);
            stream.finish();
            return;
        }
        if (!m_stream) {
            m_stream.emplace(*m_connection, task.copy_sql, Clock::now() + k_stage_timeout);
            m_stream_job = task.job;
        }
        m_stream->set_deadline(Clock::now() + k_stage_timeout);
        m_stream->write(task.data);
    }

    const ConnectionOptions& m_options;
    std::chrono::milliseconds m_connect_timeout;
    std::optional<Connection> m_connection;
    std::optional<CopyIn> m_stream;
    bool m_in_transaction = false;  // ordered staging of job m_stream_job in progress
    std::int64_t m_stream_job = 0;

    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<Task> m_tasks;
    bool m_running = false;
    bool m_stopping = false;
    std::exception_ptr m_error;
    std::thread m_thread;  // last: starts after every other member is ready
};

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
    std::exception_ptr failure;
    bool resumable = false;  // the error being thrown is a passed deadline: state kept

    Impl(ConnectionOptions connection, AsyncLoaderOptions loader_options)
        : connection_options(std::move(connection)),
          options(std::move(loader_options)),
          control(Connection::connect(connection_options, options.connect_timeout)) {
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
        if (open && unit_key.empty() && !skipping && control.is_open()) {
            try {
                detail::exec_until(
                    control, "SELECT ingest.cancel_async_load(" + std::to_string(open->id) + ")",
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

    // A control statement, bounded by `deadline` through statement_timeout (the server
    // answering slowly or waiting for a lock; a silent network is not covered).
    template <typename Body>
    auto bounded(Clock::time_point deadline, const char* what, Body&& body) {
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
        control.execute("SET statement_timeout = " + std::to_string(left));
        struct Reset {
            Connection& connection;
            ~Reset() {
                try {
                    if (connection.is_open()) {
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
            }
            throw;
        }
    }

    // Holds back while queue_size jobs are submitted and not ended.
    void hold_back(Clock::time_point deadline) {
        if (pending.size() < options.queue_size) {
            return;
        }
        const auto jobs = detail::wait_for_jobs(control, pending, deadline, options.poll_interval,
                                                options.queue_size - 1);
        pending.clear();
        for (const auto& job : jobs) {
            if (!is_ended(job.state)) {
                pending.push_back(job.id);
            }
        }
        if (pending.size() >= options.queue_size) {
            timed_out("while " + std::to_string(pending.size()) + " jobs were queued");
        }
    }

    void open_job(Clock::time_point deadline) {
        hold_back(deadline);
        AsyncJobSpec spec = options.job;
        spec.columns = options.columns;
        spec.job_key = job_key_for(unit_key, part);
        spec.ordered = order_matters && server_orders && options.parallelism > 1;
        const BegunJob job = bounded(deadline, "while beginning a job", [&] {
            try {
                return begin_async_load(control, spec);
            } catch (const Error& error) {
                // 42701: the target has a loaded column named like an order column; stage it
                // unordered (over one connection) rather than not at all.
                if (!spec.ordered || error.sqlstate() != "42701" || !control.is_open()) {
                    throw;
                }
                spec.ordered = false;
                return begin_async_load(control, spec);
            }
        });
        open_bytes = 0;
        skipping = job.state != JobState::init;
        if (skipping) {
            open = job;
            // Staged and submitted by an earlier run: never stage it again; report it.
            if (std::find(job_ids.begin(), job_ids.end(), job.id) == job_ids.end()) {
                job_ids.push_back(job.id);
                if (!is_ended(job.state)) {
                    pending.push_back(job.id);
                }
            }
            return;
        }
        if (job.staging.empty()) {
            throw loader_error("job " + std::to_string(job.id) +
                               " is INIT but has no staging table");
        }
        // An INIT job may hold part of an earlier run's data: start it afresh.
        bounded(deadline, "while emptying a staging table",
                [&] { return control.execute("TRUNCATE " + job.staging); });
        // The staging table says whether it is ordered: a resumed job keeps what the run that
        // began it chose. An ordered table needs a column list (its order columns are filled
        // by their defaults).
        const Result layout = bounded(deadline, "while reading a staging table", [&] {
            return control.execute_params(
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
    }

    // Submits the open job. Repeatable after a passed deadline: finishing a stream that is
    // already finished is a no-op.
    void submit_open(Clock::time_point deadline) {
        if (!open) {
            return;
        }
        if (!skipping) {
            for (auto& worker : workers) {
                StagingWorker::Task finish;
                finish.job = open->id;
                finish.finish = true;
                worker->push(std::move(finish));
            }
            for (auto& worker : workers) {
                if (!worker->drain(deadline)) {
                    timed_out("while the staging connections finished job " +
                              std::to_string(open->id));
                }
            }
            const JobState state = bounded(deadline, "while submitting a job",
                                           [&] { return submit_async_load(control, open->id); });
            job_ids.push_back(open->id);
            if (!is_ended(state)) {
                pending.push_back(open->id);
            }
        }
        open.reset();
    }

    // The open job reached max_temp_file_size: submit it and open the unit's next one.
    void roll_over(Clock::time_point deadline) {
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
            throw loader_error("stage() needs begin() first");
        }
        const std::uint64_t size = data.size();
        const bool staged = !impl.skipping;
        if (staged) {
            if (impl.workers.size() < impl.open_workers) {
                impl.workers.push_back(std::make_unique<StagingWorker>(
                    impl.connection_options, impl.options.connect_timeout));
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
            task.data = std::move(data);
            task.chunk = impl.open_ordered ? ++impl.open_chunks : 0;
            impl.workers[impl.next_worker++ % std::min(impl.workers.size(), impl.open_workers)]
                ->push(std::move(task));
            impl.rows += rows;
            impl.bytes += size;
        } else {
            ++impl.skipped;
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
            for (auto& job : wait_async_load_jobs(impl.control, open_ids, deadline,
                                                  impl.options.poll_interval)) {
                if (is_ended(job.state)) {
                    impl.ended[job.id] = job;
                }
                fresh[job.id] = std::move(job);
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

std::uint64_t AsyncLoader::rows_staged() const {
    return m_impl ? m_impl->rows : 0;
}

std::uint64_t AsyncLoader::bytes_staged() const {
    return m_impl ? m_impl->bytes : 0;
}

std::uint64_t AsyncLoader::chunks_skipped() const {
    return m_impl ? m_impl->skipped : 0;
}

}  // namespace pg_ingest
