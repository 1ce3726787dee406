// pg_ingest::Error — the one exception type the client library throws for database and
// connection-string problems, and the SQLSTATE classification that drives retries.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// True when an operation that failed with `sqlstate` may succeed if the whole unit of work is
// sent again (on a fresh connection when the old one is gone). Codes must be the five upper-case
// characters the server sends; anything else, including the empty string, is not transient.
//
// Transient: class 08 (connection exceptions, including the 08001/08003/08006 the library itself
// uses for failed or lost connections) except 08007 and 08P01, 40001 serialization_failure, 40P01
// deadlock_detected, 55P03 lock_not_available, 53000 insufficient_resources, 53200 out_of_memory,
// 53300 too_many_connections, 57P01 admin_shutdown, 57P02 crash_shutdown,
// 57P03 cannot_connect_now, 57P05 idle_session_timeout and 25P03
// idle_in_transaction_session_timeout (the last two: the session was ended, not the data refused).
//
// Deliberately NOT transient:
//  - 08007 transaction_resolution_unknown: the unit of work may have committed; sending it again
//    could apply it twice. Whoever knows the transaction must find out first (the Writer does).
//  - 08P01 protocol_violation: the server refused what it was sent (binary data that does not
//    fit its column type says "insufficient data left in message"); the same bytes fail again.
//  - 53100 disk_full: it does not clear within a retry back-off, needs an operator, and re-sending
//    batches adds WAL and temp-file pressure to a server that is already out of space.
//  - 57014 query_canceled: raised by statement_timeout or pg_cancel_backend(), both deliberate;
//    a timed-out statement usually times out again and a retry doubles the load. Callers that
//    want it retried can test for it themselves.
//  - XX000 internal_error and the rest of class XX, 58xxx system errors, 53400
//    configuration_limit_exceeded, 57P04 database_dropped, and every data (22), integrity (23),
//    syntax/access (42) and other error: re-sending the same rows fails the same way.
//
// Never throws.
PG_INGEST_API bool is_transient_sqlstate(std::string_view sqlstate) noexcept;

// Thrown for server errors, connection failures and invalid connection strings.
//
// A flat type: callers branch on sqlstate(), retryable() and connection_usable() instead of a
// class hierarchy. what() is the primary message only; detail() and hint() carry the server's
// DETAIL and HINT lines. Messages never contain passwords: the library builds them from keywords
// and positions, never from secret values.
class PG_INGEST_API Error : public std::runtime_error {
  public:
    // A library-side error (invalid connection string, misuse): no SQLSTATE, not retryable, and
    // the connection (if any) is unaffected.
    explicit Error(const std::string& message);

    // A full error. retryable() is derived from the SQLSTATE with is_transient_sqlstate().
    Error(const std::string& message, std::string sqlstate, std::string detail, std::string hint,
          bool connection_usable);

    Error(const Error&) = default;
    Error(Error&&) noexcept = default;
    Error& operator=(const Error&) = default;
    Error& operator=(Error&&) noexcept = default;
    ~Error() override;

    // Five-character SQLSTATE; empty when the error did not come from the server and is not a
    // connection failure (connection failures carry 08001 / 08003 / 08006).
    const std::string& sqlstate() const noexcept { return m_sqlstate; }
    // Server DETAIL line, or empty.
    const std::string& detail() const noexcept { return m_detail; }
    // Server HINT line, or empty.
    const std::string& hint() const noexcept { return m_hint; }
    // True when re-sending the whole unit of work may succeed (see is_transient_sqlstate()).
    bool retryable() const noexcept { return m_retryable; }
    // True when the connection that raised the error can still be used (for a server error, the
    // session survived; the current transaction, if any, is aborted and needs a ROLLBACK).
    bool connection_usable() const noexcept { return m_connection_usable; }
    // For an error a Writer pins on one row (exceptionmode=strict): that row's 1-based number
    // among the writer's write()/erase() calls, as in RejectedRow::row_number. For an error an
    // AsyncLoader's staging COPY raised on one row: that row's 1-based number among the rows
    // given to the loader's stage() calls (their `rows` arguments, skipped chunks included).
    // 0 otherwise.
    std::uint64_t row_number() const noexcept { return m_row_number; }
    void set_row_number(std::uint64_t row_number) noexcept { m_row_number = row_number; }

  private:
    std::string m_sqlstate;
    std::string m_detail;
    std::string m_hint;
    bool m_retryable = false;
    bool m_connection_usable = true;
    std::uint64_t m_row_number = 0;
};

}  // namespace pg_ingest
