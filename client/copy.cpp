#include <pg_ingest/copy.hpp>

#include <algorithm>
#include <cstring>
#include <memory>

#include <libpq-fe.h>

#include "io_wait.hpp"
#include "libpq_support.hpp"

namespace pg_ingest {

namespace {

using Clock = Connection::Clock;
using detail::IoReady;

struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

PGconn* open_conn(Connection& connection) {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        throw detail::connection_error(detail::k_connection_does_not_exist, "connection is closed");
    }
    return conn;
}

// Closes the connection (cancelling the server's statement) and returns the deadline Error.
Error timed_out(Connection& connection, const std::string& what) {
    connection.cancel_and_close();
    return detail::deadline_error(what);
}

// Flushes libpq's output buffer, reading whatever the server sends meanwhile (it may be an error
// that stops the stream; libpq parses it on the next call).
void flush_all(Connection& connection, PGconn* conn, Clock::time_point deadline) {
    while (true) {
        const int flushed = PQflush(conn);
        if (flushed == 0) {
            return;
        }
        if (flushed < 0) {
            throw detail::lost_connection_error(conn);
        }
        const IoReady ready = detail::wait_io(PQsocket(conn), true, deadline);
        if (ready == IoReady::timed_out) {
            throw timed_out(connection, "while sending COPY data");
        }
        if (ready == IoReady::failed) {
            throw detail::lost_connection_error(conn);
        }
        if (ready == IoReady::readable && PQconsumeInput(conn) == 0) {
            throw detail::lost_connection_error(conn);
        }
    }
}

// Waits until a result can be fetched without blocking.
void await_result(Connection& connection, PGconn* conn, Clock::time_point deadline,
                  const char* what) {
    while (PQisBusy(conn) != 0) {
        const IoReady ready = detail::wait_io(PQsocket(conn), false, deadline);
        if (ready == IoReady::timed_out) {
            throw timed_out(connection, what);
        }
        if (ready == IoReady::failed || PQconsumeInput(conn) == 0) {
            throw detail::lost_connection_error(conn);
        }
    }
}

// Reads whatever results follow a finished COPY without blocking, so the session is idle.
void drain_results(PGconn* conn) noexcept {
    while (PQisBusy(conn) == 0) {
        PGresult* rest = PQgetResult(conn);
        if (rest == nullptr)
            break;
        PQclear(rest);
    }
}

void restore_blocking(Connection& connection) noexcept {
    if (auto* conn = static_cast<PGconn*>(connection.native_handle())) {
        PQsetnonblocking(conn, 0);
    }
}

// Finishes a failed exchange: the first error of the remaining results, or a lost-connection
// error. Closes the connection when the results cannot be drained in time.
Error collect_error(Connection& connection, PGconn* conn, Clock::time_point deadline) {
    if (PQstatus(conn) != CONNECTION_OK) {
        Error error = detail::lost_connection_error(conn);
        connection.close();
        return error;
    }
    bool timeout = false;
    Error error = detail::drain_error(conn, deadline, timeout);
    if (timeout || PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) == PQTRANS_ACTIVE) {
        connection.cancel_and_close();
    } else {
        restore_blocking(connection);
    }
    return error;
}

// Sends `sql` and waits for the server's first answer, which must be `expected`.
void start_copy(Connection& connection, std::string_view sql, Clock::time_point deadline,
                ExecStatusType expected) {
    const char* const direction =
        expected == PGRES_COPY_IN ? "COPY ... FROM STDIN" : "COPY ... TO STDOUT";
    if (sql.find('\0') != std::string_view::npos) {
        throw Error("SQL text contains a NUL byte");
    }
    PGconn* conn = open_conn(connection);
    if (PQtransactionStatus(conn) == PQTRANS_ACTIVE || PQisBusy(conn) != 0) {
        throw Error(std::string("cannot start ") + direction +
                    ": the connection is busy with another statement");
    }
    if (PQsetnonblocking(conn, 1) != 0) {
        throw detail::lost_connection_error(conn);
    }
    try {
        const std::string text(sql);
        if (PQsendQuery(conn, text.c_str()) == 0) {
            throw detail::lost_connection_error(conn);
        }
        flush_all(connection, conn, deadline);
        await_result(connection, conn, deadline, "waiting for the server to start COPY");
    } catch (...) {
        if (connection.native_handle() != nullptr && !connection.is_open()) {
            connection.close();
        }
        restore_blocking(connection);
        throw;
    }
    ResultPtr result(PQgetResult(conn));
    const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status == expected) {
        return;
    }
    switch (status) {
        case PGRES_COPY_IN:
            // The wrong direction: end the server's COPY so the session returns to idle.
            PQputCopyEnd(conn, "pg_ingest: expected COPY TO STDOUT");
            PQflush(conn);
            collect_error(connection, conn, deadline);
            throw Error(std::string("not a ") + direction + " statement");
        case PGRES_COPY_OUT:
        case PGRES_COPY_BOTH:
            connection.cancel_and_close();  // cannot skip a COPY OUT within a bound; hang up
            throw Error(std::string("not a ") + direction + " statement; the connection was closed",
                        "", "", "", false);
        case PGRES_FATAL_ERROR:
        case PGRES_NONFATAL_ERROR:
        case PGRES_BAD_RESPONSE: {
            Error error = detail::error_from_result(result.get(), conn);
            result.reset();
            collect_error(connection, conn, deadline);
            throw error;
        }
        default: {
            result.reset();
            collect_error(connection, conn, deadline);
            throw Error(std::string("not a ") + direction + " statement");
        }
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CopyIn

CopyIn::CopyIn(Connection& connection, std::string_view sql, Clock::time_point deadline)
    : m_connection(&connection), m_deadline(deadline) {
    start_copy(connection, sql, deadline, PGRES_COPY_IN);
    m_active = true;
    m_buffer.reserve(k_buffer_bytes);
}

CopyIn::CopyIn(CopyIn&& other) noexcept
    : m_connection(other.m_connection),
      m_deadline(other.m_deadline),
      m_buffer(std::move(other.m_buffer)),
      m_bytes(other.m_bytes),
      m_failed_line(other.m_failed_line),
      m_active(other.m_active) {
    other.m_active = false;
}

CopyIn::~CopyIn() {
    abort("COPY stream destroyed before finish()");
}

void CopyIn::write(const void* data, std::size_t size) {
    if (!m_active) {
        throw Error("COPY FROM STDIN stream is not active");
    }
    const char* bytes = static_cast<const char*>(data);
    m_bytes += size;
    if (m_buffer.size() + size < k_buffer_bytes) {
        m_buffer.append(bytes, size);
        return;
    }
    // Fill the buffer up, send it, and pass big remainders straight through.
    const std::size_t head = k_buffer_bytes - m_buffer.size();
    m_buffer.append(bytes, head);
    send_buffer();
    bytes += head;
    size -= head;
    while (size >= k_buffer_bytes) {
        put(bytes, k_buffer_bytes);
        bytes += k_buffer_bytes;
        size -= k_buffer_bytes;
    }
    m_buffer.assign(bytes, size);
}

void CopyIn::send_buffer() {
    if (!m_buffer.empty()) {
        put(m_buffer.data(), m_buffer.size());
        m_buffer.clear();
    }
}

void CopyIn::put(const char* data, std::size_t size) {
    PGconn* conn = static_cast<PGconn*>(m_connection->native_handle());
    try {
        while (true) {
            const int put = PQputCopyData(conn, data, static_cast<int>(size));
            if (put == 1) {
                break;
            }
            if (put < 0) {
                fail();  // lost, or the server already ended the COPY with an error
            }
            // 0: libpq's buffer is full (non-blocking mode); wait for the socket.
            const IoReady ready = detail::wait_io(PQsocket(conn), true, m_deadline);
            if (ready == IoReady::timed_out) {
                throw timed_out(*m_connection, "while sending COPY data");
            }
            if (ready == IoReady::failed ||
                (ready == IoReady::readable && PQconsumeInput(conn) == 0)) {
                fail();
            }
        }
        flush_all(*m_connection, conn, m_deadline);
    } catch (...) {
        if (m_active) {
            end();
            if (!m_connection->is_open()) {
                m_connection->close();
            }
        }
        throw;
    }
}

void CopyIn::fail() {
    PGconn* conn = static_cast<PGconn*>(m_connection->native_handle());
    m_active = false;
    if (conn == nullptr) {
        throw detail::lost_connection_error(nullptr);
    }
    // The server ended the COPY early: its error result is queued (or the socket died).
    Error error = collect_error(*m_connection, conn, m_deadline);
    throw error;
}

Result CopyIn::finish() {
    if (!m_active) {
        throw Error("COPY FROM STDIN stream is not active");
    }
    send_buffer();
    PGconn* conn = static_cast<PGconn*>(m_connection->native_handle());
    try {
        while (true) {
            const int ended = PQputCopyEnd(conn, nullptr);
            if (ended == 1) {
                break;
            }
            if (ended < 0) {
                fail();
            }
            const IoReady ready = detail::wait_io(PQsocket(conn), true, m_deadline);
            if (ready == IoReady::timed_out) {
                throw timed_out(*m_connection, "while ending COPY");
            }
            if (ready == IoReady::failed ||
                (ready == IoReady::readable && PQconsumeInput(conn) == 0)) {
                fail();
            }
        }
        flush_all(*m_connection, conn, m_deadline);
        await_result(*m_connection, conn, m_deadline, "waiting for the COPY result");
    } catch (...) {
        if (m_active) {
            end();
        }
        throw;
    }
    m_active = false;
    ResultPtr result(PQgetResult(conn));
    if (result && PQresultStatus(result.get()) == PGRES_COMMAND_OK) {
        Result out = detail::result_from_pg(result.get());
        result.reset();
        drain_results(conn);  // nothing should follow; leave the session idle
        restore_blocking(*m_connection);
        return out;
    }
    Error error = result ? detail::error_from_result(result.get(), conn)
                         : detail::lost_connection_error(conn);
    if (result) {
        unsigned long long line = 0;
        if (detail::parse_copy_line(PQresultErrorField(result.get(), PG_DIAG_CONTEXT), line)) {
            m_failed_line = line;
        }
    }
    result.reset();
    collect_error(*m_connection, conn, m_deadline);
    throw error;
}

void CopyIn::abort(std::string_view reason) noexcept {
    if (!m_active) {
        return;
    }
    m_active = false;
    m_buffer.clear();
    PGconn* conn = static_cast<PGconn*>(m_connection->native_handle());
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        m_connection->close();
        return;
    }
    const auto deadline = std::min(m_deadline, Clock::now() + std::chrono::seconds(5));
    try {
        const std::string message(reason.empty() ? "aborted by the client" : reason);
        bool sent = false;
        while (!sent) {
            const int ended = PQputCopyEnd(conn, message.c_str());
            if (ended < 0) {
                break;  // the COPY already ended (server error) or the socket is gone
            }
            if (ended == 1) {
                sent = true;
                break;
            }
            const IoReady ready = detail::wait_io(PQsocket(conn), true, deadline);
            if (ready == IoReady::timed_out || ready == IoReady::failed ||
                (ready == IoReady::readable && PQconsumeInput(conn) == 0)) {
                break;
            }
        }
        if (sent) {
            flush_all(*m_connection, conn, deadline);
        }
        // The expected answer is an error ("COPY from stdin failed: <reason>"); swallow it.
        collect_error(*m_connection, conn, deadline);
    } catch (...) {
        m_connection->close();
    }
    if (m_connection->native_handle() != nullptr &&
        PQtransactionStatus(static_cast<PGconn*>(m_connection->native_handle())) ==
            PQTRANS_ACTIVE) {
        m_connection->cancel_and_close();
    }
}

void CopyIn::end() noexcept {
    m_active = false;
    m_buffer.clear();
    restore_blocking(*m_connection);
}

// ---------------------------------------------------------------------------------------------
// CopyOut

CopyOut::CopyOut(Connection& connection, std::string_view sql, Clock::time_point deadline)
    : m_connection(&connection), m_deadline(deadline) {
    start_copy(connection, sql, deadline, PGRES_COPY_OUT);
    m_active = true;
}

CopyOut::CopyOut(CopyOut&& other) noexcept
    : m_connection(other.m_connection),
      m_deadline(other.m_deadline),
      m_result(std::move(other.m_result)),
      m_active(other.m_active) {
    other.m_active = false;
}

CopyOut::~CopyOut() {
    if (m_active) {
        m_active = false;
        m_connection->close();
    }
}

bool CopyOut::read(std::string& chunk) {
    if (!m_active) {
        return false;
    }
    PGconn* conn = static_cast<PGconn*>(m_connection->native_handle());
    while (true) {
        char* buffer = nullptr;
        const int got = PQgetCopyData(conn, &buffer, 1);
        if (got > 0) {
            chunk.assign(buffer, static_cast<std::size_t>(got));
            PQfreemem(buffer);
            return true;
        }
        if (got == 0) {
            const IoReady ready = detail::wait_io(PQsocket(conn), false, m_deadline);
            if (ready == IoReady::timed_out) {
                m_active = false;
                throw timed_out(*m_connection, "while reading COPY data");
            }
            if (ready == IoReady::failed || PQconsumeInput(conn) == 0) {
                fail();
            }
            continue;
        }
        if (got == -2) {
            fail();
        }
        // -1: the stream ended; the COPY's own result follows.
        m_active = false;
        try {
            await_result(*m_connection, conn, m_deadline, "waiting for the COPY result");
        } catch (...) {
            end();
            throw;
        }
        ResultPtr result(PQgetResult(conn));
        if (result && PQresultStatus(result.get()) == PGRES_COMMAND_OK) {
            m_result = detail::result_from_pg(result.get());
            result.reset();
            drain_results(conn);
            restore_blocking(*m_connection);
            return false;
        }
        Error error = result ? detail::error_from_result(result.get(), conn)
                             : detail::lost_connection_error(conn);
        result.reset();
        collect_error(*m_connection, conn, m_deadline);
        throw error;
    }
}

std::uint64_t CopyOut::read_all(const RowHandler& handler) {
    std::string chunk;
    std::uint64_t count = 0;
    while (read(chunk)) {
        handler(chunk);  // an exception leaves the stream active: the destructor hangs up
        ++count;
    }
    return count;
}

void CopyOut::fail() {
    m_active = false;
    PGconn* conn = static_cast<PGconn*>(m_connection->native_handle());
    if (conn == nullptr) {
        throw detail::lost_connection_error(nullptr);
    }
    Error error = collect_error(*m_connection, conn, m_deadline);
    throw error;
}

void CopyOut::end() noexcept {
    m_active = false;
    if (m_connection->native_handle() != nullptr && !m_connection->is_open()) {
        m_connection->close();
    }
    restore_blocking(*m_connection);
}

}  // namespace pg_ingest
