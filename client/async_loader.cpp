#include <pg_ingest/async_loader.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include <pg_ingest/copy.hpp>

#include "async_job_wait.hpp"

namespace pg_ingest {

namespace {

using Clock = Connection::Clock;

// Chunks a staging connection may hold (one being sent, one waiting): bounds memory.
constexpr std::size_t k_chunks_per_worker = 2;
// Bound on sending one chunk or finishing one staging COPY.
constexpr std::chrono::minutes k_stage_timeout{5};

Error loader_error(const std::string& message) {
    return Error("AsyncLoader: " + message);
}

std::string job_key_for(const std::string& key, int part) {
    if (key.empty()) {
        return "";
    }
    return part == 1 ? key : key + "#" + std::to_string(part);
}

// One staging connection and its thread. Tasks run in order: chunks of a job go into one COPY
// stream on this connection; a finish task ends (commits) that stream.
class StagingWorker {
  public:
    struct Task {
        std::int64_t job = 0;
        std::string copy_sql;  // for chunks: the COPY statement of the job's staging table
        std::string data;
        bool finish = false;
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

    // Blocks until every task given so far has run; rethrows the worker's error.
    void drain() {
        std::unique_lock<std::mutex> lock(m_mutex);
        m_changed.wait(lock, [this] { return m_error || (m_tasks.empty() && !m_running); });
        if (m_error) {
            std::rethrow_exception(m_error);
        }
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
        m_stream.reset();  // CopyIn's destructor aborts an unfinished COPY (rolled back)
    }

    void execute(Task& task) {
        if (task.finish) {
            if (m_stream && m_stream_job == task.job) {
                m_stream->set_deadline(Clock::now() + k_stage_timeout);
                m_stream->finish();
                m_stream.reset();
            }
            return;
        }
        if (m_stream && m_stream_job != task.job) {
            throw loader_error("internal: staging stream of job " + std::to_string(m_stream_job) +
                               " was not finished before job " + std::to_string(task.job));
        }
        if (!m_stream) {
            if (!m_connection || !m_connection->is_open()) {
                m_connection.emplace(Connection::connect(m_options, m_connect_timeout));
            }
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
    std::optional<BegunJob> open;  // the job being staged
    bool skipping = false;         // the open job was submitted by an earlier run
    std::string copy_sql;
    std::uint64_t open_bytes = 0;

    std::vector<std::int64_t> job_ids;
    std::vector<std::int64_t> pending;  // submitted, not seen ended
    std::uint64_t rows = 0;
    std::uint64_t bytes = 0;
    std::uint64_t skipped = 0;
    std::exception_ptr failure;

    Impl(ConnectionOptions connection, AsyncLoaderOptions loader_options)
        : connection_options(std::move(connection)),
          options(std::move(loader_options)),
          control(Connection::connect(connection_options, options.connect_timeout)) {
        require_async_load(control);
    }

    template <typename Body>
    auto guarded(Body&& body) {
        if (failure) {
            std::rethrow_exception(failure);
        }
        try {
            return body();
        } catch (...) {
            failure = std::current_exception();
            throw;
        }
    }

    void hold_back() {
        if (pending.size() < options.queue_size) {
            return;
        }
        const auto jobs = detail::wait_for_jobs(control, pending, Clock::time_point::max(),
                                                options.poll_interval, options.queue_size - 1);
        pending.clear();
        for (const auto& job : jobs) {
            if (!is_ended(job.state)) {
                pending.push_back(job.id);
            }
        }
    }

    void open_job() {
        hold_back();
        AsyncJobSpec spec = options.job;
        spec.columns = options.columns;
        spec.job_key = job_key_for(unit_key, part);
        const BegunJob job = begin_async_load(control, spec);
        open = job;
        open_bytes = 0;
        skipping = job.state != JobState::init;
        if (skipping) {
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
        control.execute("TRUNCATE " + job.staging);
        std::string columns;
        for (const auto& column : options.columns) {
            columns += (columns.empty() ? " (" : ", ") + quote_identifier(column);
        }
        if (!columns.empty()) {
            columns += ")";
        }
        copy_sql = "COPY " + job.staging + columns + " FROM STDIN WITH (" +
                   options.format.sql_options() + ")";
    }

    void submit_open() {
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
                worker->drain();
            }
            const JobState state = submit_async_load(control, open->id);
            job_ids.push_back(open->id);
            if (!is_ended(state)) {
                pending.push_back(open->id);
            }
        }
        open.reset();
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

void AsyncLoader::begin(const std::string& key) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    m_impl->guarded([&] {
        m_impl->submit_open();
        m_impl->unit_key = key;
        m_impl->part = 1;
        m_impl->open_job();
    });
}

bool AsyncLoader::stage(std::string data, std::uint64_t rows) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    Impl& impl = *m_impl;
    return impl.guarded([&] {
        if (!impl.open) {
            throw loader_error("stage() needs begin() first");
        }
        const std::uint64_t size = data.size();
        const bool staged = !impl.skipping;
        if (staged) {
            if (impl.workers.size() < impl.options.parallelism) {
                impl.workers.push_back(std::make_unique<StagingWorker>(
                    impl.connection_options, impl.options.connect_timeout));
            }
            StagingWorker::Task task;
            task.job = impl.open->id;
            task.copy_sql = impl.copy_sql;
            task.data = std::move(data);
            impl.workers[impl.next_worker++ % impl.workers.size()]->push(std::move(task));
            impl.rows += rows;
            impl.bytes += size;
        } else {
            ++impl.skipped;
        }
        // Skipped chunks count too, so a restarted run rolls over at the same chunks.
        impl.open_bytes += size;
        if (impl.open_bytes >= impl.options.max_temp_file_size) {
            impl.submit_open();
            ++impl.part;
            impl.open_job();
        }
        return staged;
    });
}

void AsyncLoader::submit() {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    m_impl->guarded([&] { m_impl->submit_open(); });
}

std::vector<AsyncJob> AsyncLoader::wait(Connection::Clock::time_point deadline) {
    if (!m_impl) {
        throw loader_error("moved-from loader");
    }
    return m_impl->guarded([&] {
        m_impl->submit_open();
        return wait_async_load_jobs(m_impl->control, m_impl->job_ids, deadline,
                                    m_impl->options.poll_interval);
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
