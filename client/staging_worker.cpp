#include "staging_worker.hpp"

#include <cstdlib>

#include <pg_ingest/error.hpp>

#include "async_job_wait.hpp"
#include "exec.hpp"

namespace pg_ingest::detail {

namespace {

// Bound on sending one chunk or finishing one staging COPY.
constexpr std::chrono::minutes k_stage_timeout{5};

// Counts a COPY's lines as the server counts them (CopyReadLineText), chunk after chunk of one
// COPY: one per record, plus in CSV the line breaks inside quotes of one kind, '\n' where the
// line ends are LF, '\r' where they are CR or CRLF and inside the COPY's first record (where the
// kind is not known yet); a record is named at its last line.
class LineCounter {
  public:
    LineCounter(bool csv, char quote) : m_csv(csv), m_quote(quote) {}

    // The 0-based index of the record of `data` (the COPY's next chunk, complete records) on line
    // `line`, or std::string::npos when the chunk ends before it.
    std::size_t find(const std::string& data, std::uint64_t line) {
        std::size_t record = 0;
        std::uint64_t current = m_counted + 1;  // the line the current record has reached
        bool in_quote = false;
        for (std::size_t i = 0; i < data.size(); ++i) {
            const char c = data[i];
            if (!m_csv && c == '\\') {
                ++i;  // text: a backslash escapes the byte after it, line breaks too
                continue;
            }
            if (m_csv && c == m_quote) {
                in_quote = !in_quote;  // the loader's format has no ESCAPE apart from QUOTE
                continue;
            }
            if (in_quote) {
                if (c == (m_eol == Eol::lf ? '\n' : '\r')) {
                    ++current;
                }
                continue;
            }
            if (c != '\n' && c != '\r') {
                continue;
            }
            if (m_eol == Eol::unknown) {
                m_eol = c == '\n' ? Eol::lf : Eol::cr;
            }
            if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
                ++i;
            }
            m_counted = current;
            if (current >= line) {
                return record;
            }
            ++record;
            current = m_counted + 1;
        }
        return std::string::npos;
    }

  private:
    enum class Eol { unknown, lf, cr };
    bool m_csv;
    char m_quote;
    Eol m_eol = Eol::unknown;
    std::uint64_t m_counted = 0;  // lines of the records before the next one
};

// The kind of a chunk's first line end (its first record's): a COPY takes the kind of its first
// line end for all of them, so chunks of another kind cannot share its COPY.
enum class LineEndKind { none, lf, crlf, cr };

LineEndKind first_line_end(const StagingWorker::Task& task) {
    const std::string& data = task.data;
    bool in_quote = false;
    for (std::size_t i = 0; i < data.size(); ++i) {
        const char c = data[i];
        if (!task.csv && c == '\\') {
            ++i;
        } else if (task.csv && c == task.quote) {
            in_quote = !in_quote;
        } else if (!in_quote && c == '\n') {
            return LineEndKind::lf;
        } else if (!in_quote && c == '\r') {
            return i + 1 < data.size() && data[i + 1] == '\n' ? LineEndKind::crlf : LineEndKind::cr;
        }
    }
    return LineEndKind::none;
}

// `error`, raised by the COPY of `group`'s chunks on the COPY's line `line`, with the row named:
// for data errors only (classes 22 and 23), others (a timeout, a deadlock) are no row's fault.
Error located(const Error& error, std::optional<std::uint64_t> line,
              const std::vector<StagingWorker::Task>& group) {
    const std::string& state = error.sqlstate();
    if (!line || *line == 0 || (state.rfind("22", 0) != 0 && state.rfind("23", 0) != 0)) {
        return error;
    }
    LineCounter counter(group.front().csv, group.front().quote);
    for (const StagingWorker::Task& task : group) {
        const std::size_t index = counter.find(task.data, *line);
        if (index == std::string::npos) {
            continue;
        }
        if (task.first_row == 0) {
            return error;
        }
        const std::uint64_t row = task.first_row + index;
        Error out(std::string(error.what()) + " (staged row " + std::to_string(row) + ")",
                  error.sqlstate(), error.detail(), error.hint(), error.connection_usable());
        out.set_row_number(row);
        return out;
    }
    return error;
}

// A failure the loader cannot retry, with its SQLSTATE.
Error staging_error(const std::string& message, const char* sqlstate) {
    return Error("AsyncLoader: " + message, sqlstate, "", "", true);
}

}  // namespace

StagingWorker::StagingWorker(const ConnectionOptions& options,
                             std::chrono::milliseconds connect_timeout)
    : m_options(options), m_connect_timeout(connect_timeout), m_thread([this] { run(); }) {}

StagingWorker::~StagingWorker() {
    stop();
}

void StagingWorker::stop() noexcept {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
        if (m_socket && (m_running || m_open)) {
            // The worker's wait on the socket ends (hang-up) and its statement fails; an idle
            // COPY stream is not finished politely either (CopyFail and its answer would wait
            // on a silent network): the server rolls back at the hang-up. An idle connection
            // with nothing open is closed the ordinary way (Terminate).
            m_socket->break_off();
        }
    }
    m_changed.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void StagingWorker::set_open(bool open) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_open = open;
}

void StagingWorker::forget_socket() noexcept {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_socket.reset();
}

void StagingWorker::check() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    if (m_error) {
        std::rethrow_exception(m_error);
    }
}

StagingWorker::Backend StagingWorker::backend() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_backend;
}

template <typename Ready>
bool StagingWorker::wait_ready(std::unique_lock<std::mutex>& lock, Clock::time_point deadline,
                               Ready ready) {
    const auto done = [&] { return m_error || ready(); };
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

bool StagingWorker::push(Task& task, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(m_mutex);
    if (!wait_ready(lock, deadline, [this] { return has_room(); })) {
        return false;
    }
    m_held_bytes += task.data.size();
    m_tasks.push_back(std::move(task));
    m_changed.notify_all();
    return true;
}

bool StagingWorker::wait_room(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(m_mutex);
    return wait_ready(lock, deadline, [this] { return has_room(); });
}

bool StagingWorker::drain(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(m_mutex);
    return wait_ready(lock, deadline, [this] { return m_tasks.empty() && !m_running; });
}

void StagingWorker::run() {
    std::unique_lock<std::mutex> lock(m_mutex);
    while (true) {
        m_changed.wait(lock, [this] { return m_stopping || !m_tasks.empty(); });
        if (m_stopping) {
            break;  // pending tasks are dropped; an open stream is aborted below
        }
        // Unordered chunks of one job waiting together go in one COPY (up to k_held_bytes): a COPY
        // per small chunk would wait for the server's answer after each.
        // Only chunks whose line ends are of one kind: a COPY refuses a line end of another kind
        // than its first.
        std::vector<Task> group;
        std::size_t group_bytes = 0;
        LineEndKind kind = LineEndKind::none;
        do {
            group_bytes += m_tasks.front().data.size();
            m_held_bytes -= m_tasks.front().data.size();
            group.push_back(std::move(m_tasks.front()));
            m_tasks.pop_front();
            if (group.size() == 1 && !group.front().finish && group.front().chunk == 0) {
                kind = first_line_end(group.front());
            }
        } while (!m_tasks.empty() && !group.front().finish && group.front().chunk == 0 &&
                 !m_tasks.front().finish && m_tasks.front().chunk == 0 &&
                 m_tasks.front().job == group.front().job &&
                 group_bytes + m_tasks.front().data.size() <= k_held_bytes &&
                 kind != LineEndKind::none && first_line_end(m_tasks.front()) == kind);
        m_running = true;
        lock.unlock();
        std::exception_ptr error;
        try {
            execute(group);
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        m_running = false;
        if (error) {
            m_error = error;
            m_tasks.clear();
            m_held_bytes = 0;
        }
        m_changed.notify_all();
        if (m_error) {
            break;
        }
    }
    lock.unlock();
    forget_socket();
    m_connection.reset();  // an open staging transaction is rolled back with it
}

// Each chunk, or group of unordered chunks, is its own COPY (ordered: after setting
// ingest.stage_chunk), inside one transaction per job on this connection: the staging stays all
// or nothing.
void StagingWorker::execute(std::vector<Task>& group) {
    Task& task = group.front();
    if (task.finish) {
        if (m_in_transaction && m_stream_job == task.job) {
            m_in_transaction = false;
            const Result done =
                exec_until(*m_connection, "COMMIT", nullptr, Clock::now() + k_stage_timeout);
            if (done.command_tag() != "COMMIT") {  // ROLLBACK: an error went unnoticed
                // 40000 transaction_rollback: the staging is gone, as after a failed COMMIT.
                throw staging_error("staging of job " + std::to_string(task.job) +
                                        " was rolled back at COMMIT (" + done.command_tag() + ")",
                                    "40000");
            }
            set_open(false);
        }
        return;
    }
    if (m_in_transaction && m_stream_job != task.job) {
        throw staging_error("internal: staging stream of job " + std::to_string(m_stream_job) +
                                " was not finished before job " + std::to_string(task.job),
                            "XX000");
    }
    if (m_in_transaction && (!m_connection || !m_connection->is_open())) {
        // Never start afresh in autocommit: the earlier chunks went with the connection. The
        // job as a whole may be staged again (retryable).
        throw Error("AsyncLoader: staging connection of job " + std::to_string(m_stream_job) +
                        " was lost in its transaction",
                    "08003", "", "", false);
    }
    if (!m_connection || !m_connection->is_open()) {
        forget_socket();
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_backend = Backend{};
        }
        // Bounded by the deadline of the call that gave the task (plus its grace), as the
        // control connection's connect is, and by connect_timeout.
        m_connection.emplace(
            Connection::connect(m_options, connect_deadline(task.connect_by, m_connect_timeout)));
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            if (m_stopping) {
                throw staging_error("stopped", "57014");
            }
            m_socket.emplace(*m_connection);
        }
        // Between two ordered chunks the connection is idle in its transaction, for as long as
        // the caller takes to produce the next ones: a server-side limit on that must not end
        // the staging. The backend's start names it beside its pid (see backend()).
        const Result setup = exec_until(
            *m_connection,
            "SELECT pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false), "
            "a.pid, EXTRACT(epoch FROM a.backend_start)::text FROM (SELECT) AS one LEFT JOIN "
            "pg_catalog.pg_stat_activity a ON a.pid = pg_catalog.pg_backend_pid()",
            nullptr, Clock::now() + k_stage_timeout);
        // The server's own pid (behind a pooler, libpq's may name another process).
        std::lock_guard<std::mutex> lock(m_mutex);
        if (setup.rows() == 1 && setup.get(0, 1)) {
            m_backend = Backend{std::atoi(setup.get(0, 1).value_or("0").c_str()),
                                setup.get(0, 2).value_or("")};
        }
    }
    if (!m_in_transaction) {
        set_open(true);
        exec_until(*m_connection, "BEGIN", nullptr, Clock::now() + k_stage_timeout);
        m_in_transaction = true;
        m_stream_job = task.job;
    }
    if (task.chunk > 0) {
        exec_until(*m_connection,
                   "SELECT pg_catalog.set_config('ingest.stage_chunk', '" +
                       std::to_string(task.chunk) + "', true)",
                   nullptr, Clock::now() + k_stage_timeout);
    }
    CopyIn stream(*m_connection, task.copy_sql, Clock::now() + k_stage_timeout);
    try {
        for (const Task& chunk : group) {
            stream.write(chunk.data);
        }
        stream.finish();
    } catch (const Error& error) {
        throw located(error, stream.failed_line(), group);
    }
}

}  // namespace pg_ingest::detail
