// Internal glue between libpq and the public types. Not installed: libpq stays out of the
// public headers.
#pragma once

#include <string>
#include <string_view>

#include <libpq-fe.h>

#include <pg_ingest/error.hpp>
#include <pg_ingest/result.hpp>

namespace pg_ingest::detail {

// SQLSTATEs the library assigns to client-side connection failures (the server's own codes).
inline constexpr std::string_view k_sqlclient_unable_to_establish = "08001";
inline constexpr std::string_view k_connection_does_not_exist = "08003";
inline constexpr std::string_view k_connection_failure = "08006";

// libpq messages end with a newline (and may hold several lines); keep them single-line-ended.
std::string trim_message(const char* message);

// An Error for a failed statement: SQLSTATE, primary message, detail and hint from `result`
// (which may be null, e.g. when the query could not be sent), connection_usable from
// PQstatus(conn). A failure without a SQLSTATE on a broken connection becomes 08006.
Error error_from_result(const PGresult* result, const PGconn* conn);

// An Error for a connection that could not be established or does not exist.
Error connection_error(std::string_view sqlstate, const std::string& message);

// Copies a PGRES_TUPLES_OK / PGRES_COMMAND_OK / PGRES_EMPTY_QUERY result into a Result.
Result result_from_pg(PGresult* result);

}  // namespace pg_ingest::detail
