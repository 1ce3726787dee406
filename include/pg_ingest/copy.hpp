// pg_ingest::CopyIn / pg_ingest::CopyOut — low-level COPY streams on a Connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/result.hpp>

namespace pg_ingest {

// One `COPY ... FROM STDIN` in progress on a borrowed Connection.
//
// Ownership: the stream refers to `connection`, which must outlive it and must not be used for
// anything else until the stream has ended (finish(), abort(), an Error, or destruction). The
// stream is move-only.
//
// Bounds: every blocking wait (starting, writing, finishing) ends at the stream's deadline,
// given to the constructor and movable with set_deadline(); Clock::time_point::max() means no
// bound (a wait then ends only when the server answers or the OS reports the socket dead). When
// the deadline passes, the server is asked to cancel the COPY and the connection is closed (the
// protocol cannot be resynchronised with a statement in flight; Connection::cancel_and_close may
// add up to 0.5 s), and a retryable Error 08006 with connection_usable() false is thrown. If
// that happens inside finish() in autocommit mode, the COPY may or may not have committed.
//
// Errors: server errors throw pg_ingest::Error with the server's SQLSTATE, detail and hint (the
// stream is over; an enclosing transaction is aborted and needs ROLLBACK); a lost connection
// throws a retryable Error with connection_usable() false. After any Error the stream is ended.
// While the stream is active the connection is in libpq's non-blocking mode; it is restored to
// blocking mode when the stream ends.
class PG_INGEST_API CopyIn {
  public:
    using Clock = Connection::Clock;

    // Bytes collected before they are handed to libpq as one CopyData message.
    static constexpr std::size_t k_buffer_bytes = 64 * 1024;

    // Sends `sql` (which must be a COPY ... FROM STDIN) and waits for the server to accept it.
    // Throws Error (server SQLSTATE) when the statement fails; Error without SQLSTATE when it is
    // not a COPY FROM STDIN (that statement has then run to completion) or when the connection
    // is busy; the timeout / lost-connection Errors described above.
    CopyIn(Connection& connection, std::string_view sql,
           Clock::time_point deadline = Clock::time_point::max());

    CopyIn(const CopyIn&) = delete;
    CopyIn& operator=(const CopyIn&) = delete;
    CopyIn(CopyIn&& other) noexcept;
    CopyIn& operator=(CopyIn&& other) = delete;
    // Aborts an unfinished stream (see abort()); never throws.
    ~CopyIn();

    // Appends bytes of the COPY data stream (any framing: text lines, CSV, binary tuples).
    // Data is buffered and sent in k_buffer_bytes pieces; a call blocks only while the socket
    // cannot take more (bounded by the deadline). Throws Error; Error without SQLSTATE when the
    // stream is not active.
    void write(const void* data, std::size_t size);
    void write(std::string_view data) { write(data.data(), data.size()); }

    // Sends the rest, ends the COPY and waits for the server's verdict. Returns the Result of the
    // COPY (command_tag() "COPY n", affected_rows() n). Throws like the constructor; a data
    // error in the stream surfaces here (or in an earlier write() once the server has reported
    // it). The line the server blamed, if any, is then in failed_line().
    Result finish();

    // Ends the COPY with a client-side failure: the server rolls the COPY back (the enclosing
    // transaction, if any, is aborted). Waits for the server to acknowledge until the deadline
    // (at most 5 s from now when the deadline is max()); if it does not, the connection is
    // closed. Idempotent; never throws; afterwards the connection is usable (check is_open()).
    void abort(std::string_view reason) noexcept;

    // True from construction until finish(), abort() or an Error.
    bool active() const noexcept { return m_active; }
    // Bytes accepted by write() so far.
    std::uint64_t bytes_written() const noexcept { return m_bytes; }
    // After a server error: the 1-based input line (for binary COPY, the tuple) named in the
    // error's CONTEXT ("COPY t, line 3"), when the server reported one.
    std::optional<std::uint64_t> failed_line() const noexcept { return m_failed_line; }

    void set_deadline(Clock::time_point deadline) noexcept { m_deadline = deadline; }
    Clock::time_point deadline() const noexcept { return m_deadline; }

  private:
    void send_buffer();
    void put(const char* data, std::size_t size);
    [[noreturn]] void fail();
    void end() noexcept;

    Connection* m_connection;
    Clock::time_point m_deadline;
    std::string m_buffer;
    std::uint64_t m_bytes = 0;
    std::optional<std::uint64_t> m_failed_line;
    bool m_active = false;
};

// One `COPY ... TO STDOUT` in progress on a borrowed Connection.
//
// Ownership and bounds as for CopyIn: the connection must outlive the stream and serve nothing
// else meanwhile; every wait ends at the deadline (then the COPY is cancelled, the connection
// is closed and a retryable Error 08006, connection_usable() false, is thrown). Server errors
// throw Error with SQLSTATE. Abandoning an unfinished stream (destroying it before read()
// returned false) closes the connection: the only bounded way out of a COPY OUT is to read
// everything or hang up.
class PG_INGEST_API CopyOut {
  public:
    using Clock = Connection::Clock;
    // Called once per CopyData message (one row in text/CSV; binary COPY sends one per tuple,
    // with the header and trailer in the first and last). The view is valid during the call.
    using RowHandler = std::function<void(std::string_view)>;

    // Sends `sql` (which must be a COPY ... TO STDOUT) and waits for the server to start it.
    // Throws like CopyIn's constructor.
    CopyOut(Connection& connection, std::string_view sql,
            Clock::time_point deadline = Clock::time_point::max());

    CopyOut(const CopyOut&) = delete;
    CopyOut& operator=(const CopyOut&) = delete;
    CopyOut(CopyOut&& other) noexcept;
    CopyOut& operator=(CopyOut&& other) = delete;
    // Closes the connection if the stream was not read to the end; never throws.
    ~CopyOut();

    // Replaces `chunk` with the next CopyData message and returns true; returns false at the end
    // of the stream (then result() holds the command tag). Blocks until data arrives or the
    // deadline. Throws Error; after the end it keeps returning false.
    bool read(std::string& chunk);

    // Reads the whole stream, calling `handler` per message; returns the number of messages.
    // An exception from the handler propagates (the connection is then closed, as when the
    // stream is abandoned).
    std::uint64_t read_all(const RowHandler& handler);

    // True until read() has returned false or thrown.
    bool active() const noexcept { return m_active; }
    // The COPY's Result once read() returned false ("COPY n"); empty before.
    const Result& result() const noexcept { return m_result; }

    void set_deadline(Clock::time_point deadline) noexcept { m_deadline = deadline; }
    Clock::time_point deadline() const noexcept { return m_deadline; }

  private:
    [[noreturn]] void fail();
    void end() noexcept;

    Connection* m_connection;
    Clock::time_point m_deadline;
    Result m_result;
    bool m_active = false;
};

}  // namespace pg_ingest
