// pg_ingest::parse_text_value — one field in PostgreSQL's text representation (as COPY's text and
// CSV formats carry it, after un-quoting) turned into a typed Value for a target column.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include <pg_ingest/export.hpp>
#include <pg_ingest/value.hpp>

namespace pg_ingest {

struct PG_INGEST_API TextValueOptions {
    // timestamptz input without a UTC offset is a wall-clock reading in the session's time zone.
    // This converts such a reading (microseconds since 2000-01-01 00:00:00 local time) to
    // microseconds since 2000-01-01 00:00:00 UTC; it may throw pg_ingest::Error. Empty: the
    // reading is taken as UTC. Called from the parsing thread.
    std::function<std::int64_t(std::int64_t local_micros)> local_to_utc;
};

// Parses `text` (never SQL NULL: the caller maps its null marker; inside arrays an unquoted NULL
// element is NULL) into a Value that encode_field() accepts for `type`. Accepted input follows
// the server's input functions for the ISO/default styles:
//   smallint/integer/bigint  [+-]digits, blanks around (range-checked)
//   real/double precision    decimal or exponent notation, NaN, [+-]Infinity, [+-]inf
//   numeric                  decimal, exponent, NaN, [+-]Infinity; rounded to the typmod scale
//   boolean                  t/f/true/false/yes/no/on/off/1/0 and unique prefixes, any case
//   text/varchar/char        as is (UTF-8, no NUL; trailing blanks beyond char(n) dropped)
//   date                     YYYY-MM-DD [BC], infinity, -infinity, epoch (a time part ignored)
//   time                     HH:MM[:SS[.frac]] (24:00:00 allowed; a UTC offset ignored)
//   timestamp[tz]            YYYY-MM-DD[ T]HH:MM[:SS[.frac]] [offset] [BC], infinity, epoch;
//                            offsets Z, UTC, GMT, +HH, +HHMM, +HH:MM, +HH:MM:SS; fractions
//                            rounded to microseconds; timestamp ignores an offset, as the
//                            server does; timestamptz without one uses options.local_to_utc
//   interval                 the server's output styles postgres ("1 year 2 mons -3 days
//                            +04:05:06.5"), postgres_verbose ("@ 1 hour 2 mins ago"),
//                            iso_8601 ("P1Y2M3DT4H5M6.5S") and sql_standard ("1-2 3 4:05:06"),
//                            with fractional units distributed as the server does
//   json/jsonb               validated JSON text (RFC 8259; jsonb also refuses \u0000)
//   uuid                     32 hex digits, hyphens between groups of 4, optional braces
//   bytea                    \x hex (blanks between pairs allowed) or the escape format
//   one-dimensional arrays   {a,"b c",NULL,"x\"y"} with the element type's syntax
// Throws pg_ingest::Error (not retryable) whose message starts with `what` (e.g. column "qty")
// and quotes the value: 22P02 invalid syntax, 22003 out of range, 22007 invalid date/time
// syntax, 22008 date/time out of range, 22015 interval field overflow, 22021 NUL or invalid
// UTF-8, 22023 invalid hex in bytea, 22001 too long for varchar(n)/char(n), 22P05 \u0000 in
// jsonb, 0A000 multidimensional arrays. Thread-safe; no I/O.
PG_INGEST_API Value parse_text_value(std::string_view text, const ColumnType& type,
                                     std::string_view what = {},
                                     const TextValueOptions& options = {});

}  // namespace pg_ingest
