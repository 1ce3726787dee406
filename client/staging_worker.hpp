// Internal: one AsyncLoader staging connection and its thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/copy.hpp>

#include "socket_breaker.hpp"

namespace pg_ingest::detail {

// Tasks run in order: chunks of a job go into one COPY each inside one transaction on this
// connection (with ordered staging after setting the chunk's number; unordered chunks waiting
// together share one COPY); a finish task commits that transaction. A COPY per chunk or group,
// so that the line the server names in a COPY error is in chunks still here to find the row in. The
// first error stops the worker: it is rethrown by every later push() and drain(), and the
// connection is closed (its staging rolled back).
class StagingWorker {
  public:
    using Clock = Connection::Clock;

    struct Task {
        std::int64_t job = 0;
        std::string copy_sql;  // for chunks: the COPY statement of the job's staging table
        std::string data;
        bool finish = false;
        // Ordered staging: the chunk's number (ingest.stage_chunk), >= 1; 0: unordered.
        std::int64_t chunk = 0;
        // The 1-based number of the chunk's first row among the rows given to the loader's
        // stage() (0: not counted), and how the server counts the chunk's lines (CSV: the line
        // breaks inside quotes too): a COPY error on a line of the chunk is thrown with
        // Error::row_number() set to its row.
        std::uint64_t first_row = 0;
        bool csv = false;
        char quote = '"';
        // A connection this task opens is given up by then (or after connect_timeout, if that
        // comes first): the deadline of the call that gave the task, plus its grace.
        Clock::time_point connect_by = Clock::time_point::max();
    };

    // Chunks a worker may hold (one being sent, one waiting), or more unordered ones while their
    // bytes stay under k_held_bytes (small chunks, sent together): bounds memory.
    static constexpr std::size_t k_chunks = 2;
    static constexpr std::size_t k_held_bytes = 8u << 20;
    static constexpr std::size_t k_max_held = 1024;

    // `options` must outlive the worker. Connects when the first task runs.
    StagingWorker(const ConnectionOptions& options, std::chrono::milliseconds connect_timeout);
    // Drops pending tasks, aborts an open COPY and closes the connection. Never throws.
    ~StagingWorker();
    StagingWorker(const StagingWorker&) = delete;
    StagingWorker& operator=(const StagingWorker&) = delete;

    // Blocks while the worker holds no room for a task (see has_room()), at most until
    // `deadline` (false: the task was not taken); rethrows the worker's error.
    bool push(Task& task, Clock::time_point deadline = Clock::time_point::max());

    // Blocks while the worker holds no room for a task, at most until `deadline` (false); rethrows
    // the worker's error. True: the next push() takes its task without waiting (only the
    // caller's thread pushes).
    bool wait_room(Clock::time_point deadline);

    // Blocks until every task given so far has run or `deadline` passes (false); rethrows the
    // worker's error.
    bool drain(Clock::time_point deadline);

    // Rethrows the worker's error, if it has one; never blocks.
    void check() const;

    // Drops pending tasks, breaks off the task in progress (its socket is shut down, so that a
    // statement waiting on a silent network ends now rather than at its 5-minute bound) and
    // closes the connection: what it had not committed is rolled back, and a COMMIT broken off
    // may or may not have committed. push() and drain() must not follow. Idempotent.
    void stop() noexcept;

    // The server process of the worker's last connection, named by its pid and its start
    // (pg_stat_activity.backend_start as epoch seconds, text): a pid alone may have been reused
    // by another session once that process ended. Empty before the connection is set up.
    struct Backend {
        int pid = 0;
        std::string started;
    };
    Backend backend() const;

  private:
    void run();
    void execute(std::vector<Task>& group);
    // m_mutex held: a push would not wait. More than k_chunks only for unordered chunks (they
    // go out together); ordered ones are a COPY each anyway.
    bool has_room() const {
        return m_tasks.size() < k_chunks ||
               (m_tasks.back().chunk == 0 && !m_tasks.back().finish &&
                m_held_bytes < k_held_bytes && m_tasks.size() < k_max_held);
    }
    void forget_socket() noexcept;
    void set_open(bool open);
    // Waits (m_mutex held by `lock`) until `ready()` or the worker's error, at most until
    // `deadline` (false); rethrows the error.
    template <typename Ready>
    bool wait_ready(std::unique_lock<std::mutex>& lock, Clock::time_point deadline, Ready ready);

    const ConnectionOptions& m_options;
    std::chrono::milliseconds m_connect_timeout;
    std::optional<Connection> m_connection;
    bool m_in_transaction = false;  // the staging transaction of job m_stream_job is open
    std::int64_t m_stream_job = 0;

    mutable std::mutex m_mutex;
    Backend m_backend;  // guarded by m_mutex
    // A duplicate of the connection's socket, for stop() to shut down from its own thread (a
    // descriptor of our own: libpq's may be closed and its number reused meanwhile). Guarded by
    // m_mutex; closed with the connection, or the server would not see the session end.
    std::optional<SocketBreaker> m_socket;
    std::condition_variable m_changed;
    std::deque<Task> m_tasks;
    std::size_t m_held_bytes = 0;  // the data of m_tasks
    bool m_running = false;
    bool m_open = false;  // a staging transaction is open (set by the worker)
    bool m_stopping = false;
    std::exception_ptr m_error;
    std::thread m_thread;  // last: starts after every other member is ready
};

}  // namespace pg_ingest::detail
