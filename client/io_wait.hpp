// Internal: bounded waits on a libpq socket, shared by the COPY streams and the writer.
#pragma once

#include <chrono>
#include <string>

#include <libpq-fe.h>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/error.hpp>

namespace pg_ingest::detail {

enum class IoReady { readable, writable, timed_out, failed };

// Waits until the socket is readable (or, when `want_write`, readable or writable) or the
// deadline passes. time_point::max() waits without a bound. Readability includes hang-up and
// error conditions: libpq finds out what happened on its next call. Retries EINTR.
IoReady wait_io(int socket, bool want_write, Connection::Clock::time_point deadline);

// The Error for a stream whose deadline passed after `what` (the connection has been closed).
Error deadline_error(const std::string& what);

// The Error for a lost connection (libpq's message, SQLSTATE 08006, connection unusable).
Error lost_connection_error(const PGconn* conn);

// Drains pending results after an error and returns the first failed one as an Error (or a
// lost-connection Error). Blocks until the server finishes (bounded by `deadline`, after which
// the caller must close the connection); `timed_out` is set then.
Error drain_error(PGconn* conn, Connection::Clock::time_point deadline, bool& timed_out);

// The 1-based line number in a COPY error CONTEXT ("COPY t, line 12, column c: ..."), if any.
bool parse_copy_line(const char* context, unsigned long long& line);

}  // namespace pg_ingest::detail
