// pg_ingest::Connection — one libpq connection, owned RAII-style.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/result.hpp>

namespace pg_ingest {

// Asks the server to cancel the statement a session is running, from any thread: the session
// may be blocked in a call on another thread meanwhile (the request goes over a connection of
// its own, as libpq's PQcancel sends it). Copyable; stays valid after its Connection closed (the
// server ignores a cancel for a session that has ended, and for an idle one). Never throws.
class PG_INGEST_API CancelToken {
  public:
    CancelToken() = default;  // cancels nothing
    // Sends the request, and again 300 ms later (a request that arrives before the statement
    // starts is ignored); waits at most `bound` for the first to be delivered (a thread carries
    // on beyond that). False when the token is empty or the request was not delivered within
    // `bound`.
    bool cancel(std::chrono::milliseconds bound = std::chrono::milliseconds(500)) const noexcept;
    explicit operator bool() const noexcept { return m_cancel != nullptr; }

  private:
    friend class Connection;
    std::shared_ptr<void> m_cancel;  // a PGcancel
};

// Owns one server session (a PGconn). Move-only; the destructor closes the session without
// waiting for the server. Not thread-safe: use one Connection from one thread at a time.
// A moved-from Connection is closed: is_open() is false, ping() returns false, and statements
// throw Error 08003. Unless stated otherwise, methods throw pg_ingest::Error and give the basic
// guarantee (the object stays valid; check is_open() / Error::connection_usable()).
class PG_INGEST_API Connection {
  public:
    using Clock = std::chrono::steady_clock;
    using Parameters = std::vector<std::optional<std::string>>;
    // Receives server NOTICE/WARNING text (without the trailing newline). Must not throw.
    using NoticeHandler = std::function<void(const std::string&)>;

    // Connects without blocking on the network: the attempt (all hosts in the list, TLS and
    // authentication included) is abandoned at `deadline`, even if a host never answers.
    // connect_timeout (JDBC connectTimeout) bounds each host of a host list, as in libpq: a host
    // that does not answer in time is left for the next one (with prefer-standby, or hosts from
    // the environment, it bounds the whole attempt). Host names are resolved with the system
    // resolver, which can block; use hostaddr to avoid DNS.
    // Throws Error, connection_usable() false, on any failure or timeout; the message names the
    // host as libpq reports it and never contains a password. Its SQLSTATE is the server's when
    // the server refused the session (28P01 wrong or missing password, 28000 unknown role or no
    // pg_hba entry, 3D000 unknown database: not retryable; 53300 too many connections, 57P03
    // starting up: retryable), else 08001 (unreachable, timed out: retryable).
    static Connection connect(const ConnectionOptions& options, Clock::time_point deadline);
    // Same with a relative timeout; throws std::invalid_argument if timeout is not positive.
    static Connection connect(const ConnectionOptions& options, std::chrono::milliseconds timeout);

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    Connection(Connection&& other) noexcept;
    // Closes this connection's own session first.
    Connection& operator=(Connection&& other) noexcept;
    ~Connection();

    // Runs one or more statements with the simple query protocol and returns the last result.
    // Blocks until the server answers or the connection's deadline (set_deadline) passes.
    // COPY ... FROM STDIN / TO STDOUT is rejected (the COPY is aborted and the session survives;
    // under a deadline the session is closed instead).
    // Server errors throw Error with SQLSTATE, detail, hint; a lost session throws a retryable
    // Error with connection_usable() false (SQLSTATE from the server, else 08006).
    Result execute(std::string_view sql);
    // One statement with text parameters $1..$n (nullopt is NULL); types are inferred by the
    // server. Blocks and throws like execute().
    Result execute_params(std::string_view sql, const Parameters& params);

    // Bounds the blocking waits of every later execute() and execute_params(), until changed:
    // a statement still unanswered at `deadline` is cancelled (a cancel request, as in
    // cancel_and_close()), the session is closed and Error 08006 is thrown (retryable,
    // connection_usable() false); whether the statement took effect is then unknown. Unlike
    // statement_timeout, this also holds when the network goes silent. A statement started
    // after the deadline fails the same way at once. Clock::time_point::max() (the initial
    // value) means no bound; a connection that is connected again starts without one.
    // COPY cannot run under a deadline (use CopyIn/CopyOut, which take their own). Never throws.
    void set_deadline(Clock::time_point deadline) noexcept;
    Clock::time_point deadline() const noexcept;

    // Health check: a round trip with an empty query, bounded by `timeout`. Returns false when
    // the session is unusable; on timeout the session is closed (a query is in flight and the
    // protocol cannot be resynchronised). A non-positive timeout returns false without I/O.
    // Never throws.
    bool ping(std::chrono::milliseconds timeout = std::chrono::seconds(5)) noexcept;
    // Health check that also returns the session to its state at connect: DISCARD ALL (settings,
    // role and session authorization, prepared statements, temporary tables, LISTENs, advisory
    // locks), bounded by `timeout`; on success the notifications already received are dropped
    // too. Returns false, like ping(), when the session is unusable or the statement fails
    // (e.g. inside a transaction block). Used by ConnectionPool when a lease returns a session.
    // Never throws.
    bool reset_session(std::chrono::milliseconds timeout = std::chrono::seconds(5)) noexcept;

    // True when a session exists and libpq reports it healthy (no I/O is done).
    bool is_open() const noexcept;
    // Closes the session now; idempotent.
    void close() noexcept;
    // Closes the session, first asking the server to cancel the statement it is running, if
    // any (libpq reports one in flight, a COPY included). Used where a statement is given up at
    // a deadline: a closed socket alone is not noticed by a server that is waiting on a lock or
    // computing, so it would run the statement to its end and hold its locks meanwhile. The
    // cancel request goes over a new connection; this call waits at most `bound` for it to be
    // delivered (a server that does not answer is left to notice the closed session). Never
    // throws; idempotent.
    void cancel_and_close(
        std::chrono::milliseconds bound = std::chrono::milliseconds(500)) noexcept;
    // A token that cancels this session's statements from another thread (see CancelToken).
    // Throws Error 08003 when the session is not open.
    CancelToken cancel_token() const;

    // Server version as an integer, e.g. 150004; 0 when not open.
    int server_version() const noexcept;
    // Process id of the server backend; 0 when not open.
    int backend_pid() const noexcept;

    // Quotes an identifier (adds double quotes, doubles embedded ones) for the session's encoding.
    // Throws Error 08003 when not open, Error 22021 for bytes invalid in the client encoding.
    std::string quote_identifier(std::string_view identifier) const;
    // Quotes a literal ('...' or E'...'); throws like quote_identifier().
    std::string quote_literal(std::string_view literal) const;

    // Replaces the notice handler (by default notices are dropped, never printed to stderr).
    void set_notice_handler(NoticeHandler handler);

    // The underlying PGconn*, for library internals; nullptr when closed. Ownership stays here.
    void* native_handle() const noexcept;

  private:
    struct Impl;
    explicit Connection(std::unique_ptr<Impl> impl) noexcept;
    // The implementation, or Error 08003 for a moved-from Connection.
    Impl& checked_impl() const;
    // Sends `sql` (empty: an empty query) and reads its answers within `timeout`; true when it
    // succeeded and the session is healthy. Closes the session when the wait times out.
    bool round_trip(const char* sql, std::chrono::milliseconds timeout) noexcept;

    std::unique_ptr<Impl> m_impl;
};

}  // namespace pg_ingest
