// pg_ingest::parse_text_value — one field in PostgreSQL's text representation (as COPY's text and
// CSV formats carry it, after un-quoting) turned into a typed Value for a target column.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include <pg_ingest/export.hpp>
#include <pg_ingest/value.hpp>

namespace pg_ingest {

// The server's IntervalStyle settings. Interval input is read the same way under all of them
// except sql_standard: there, a leading '-' on the first field, with no other field signed,
// makes every field negative ("-1 2:00:00" is -1 day -2 hours; elsewhere -1 day +2 hours).
enum class IntervalStyle { postgres, postgres_verbose, sql_standard, iso_8601 };

struct PG_INGEST_API TextValueOptions {
    // timestamptz input without a UTC offset is a wall-clock reading in the session's time zone.
    // This converts such a reading (microseconds since 2000-01-01 00:00:00 local time) to
    // microseconds since 2000-01-01 00:00:00 UTC; it may throw pg_ingest::Error. Empty: the
    // reading is taken as UTC. Called from the parsing thread.
    std::function<std::int64_t(std::int64_t local_micros)> local_to_utc;
    // The IntervalStyle of the session whose reading of the text must be matched (for a loader,
    // the one its COPY would run in: current_setting('IntervalStyle')). The default is the
    // server's default, postgres.
    IntervalStyle interval_style = IntervalStyle::postgres;
};

// Parses `text` (never SQL NULL: the caller maps its null marker; inside arrays an unquoted NULL
// element is NULL) into a Value that encode_field() accepts for `type`. Accepted input follows
// the server's input functions for the ISO/default styles:
//   smallint/integer/bigint  [+-]digits, blanks around (range-checked)
//   real/double precision    what the server's strtod takes, whatever the process locale:
//                            decimal, exponent or hex notation, NaN, [+-]Infinity, [+-]inf
//   numeric                  decimal, exponent, NaN, [+-]Infinity; rounded to the typmod scale
//   boolean                  t/f/true/false/yes/no/on/off/1/0 and unique prefixes, any case
//   text/varchar/char        as is (UTF-8, no NUL; trailing blanks beyond char(n) dropped)
//   date                     YYYY-MM-DD [BC], infinity, -infinity, epoch (a time part ignored)
//   time                     HH:MM[:SS[.frac]] (24:00:00 allowed; a UTC offset ignored)
//   timestamp[tz]            YYYY-MM-DD[ T]HH:MM[:SS[.frac]] [offset] [BC], infinity, epoch;
//                            offsets Z, UTC, GMT and the server's numeric forms: +H[H], +HMM,
//                            +HHMM, +H[H]:M[M][:S[S]] (hours to 15, else 22009); fractions
//                            rounded to microseconds; timestamp ignores an offset, as the
//                            server does; timestamptz without one uses options.local_to_utc
//   interval                 everything PostgreSQL 15's interval_in reads, read as it reads
//                            it in a session with options.interval_style: its output styles
//                            postgres ("1 year 2 mons -3 days +04:05:06.5"), postgres_verbose
//                            ("@ 1 hour 2 mins ago"), iso_8601 ("P1Y2M3DT4H5M6.5S" and the
//                            alternative formats P0001-02-03T04:05:06, P00010203T040506) and
//                            sql_standard ("1-2 3 4:05:06"), and its other spellings ("1h30m",
//                            "1 day, 2 hours"); fractions spilled and rounded, overflow checked
//                            field by field, as the server does (ISO numbers are doubles:
//                            P1.2M is 1 mon 5 days 24:00:00); a bare number in the unit after
//                            it ("1 2 hours"), or the smallest field of an interval(fields)
//                            column ('5' is 5 years for interval year); a leading '-' applies
//                            to every field only under sql_standard ("-1 4:05:06" is -1 day
//                            -04:05:06 there, -1 day +04:05:06 under the other styles)
//   json/jsonb               validated JSON text (RFC 8259; jsonb also refuses \u0000 and
//                            unpaired surrogate escapes, which json keeps as the server does)
//   uuid                     32 hex digits, hyphens between groups of 4, optional braces
//   bytea                    \x hex (blanks between pairs allowed) or the escape format
//   one-dimensional arrays   {a,"b c",NULL,"x\"y"} with the element type's syntax; a
//                            [1:n]= or [n]= decoration must match the element count
// Throws pg_ingest::Error (not retryable) whose message starts with `what` (e.g. column "qty")
// and quotes the value: 22P02 invalid syntax, 22003 out of range, 22007 invalid date/time
// syntax, 22008 date/time out of range, 22015 interval field overflow, 22021 NUL or invalid
// UTF-8, 22023 invalid hex in bytea, 22001 too long for varchar(n)/char(n), 22P05 \u0000 in
// jsonb, 22009 UTC offset out of range, 2202E array upper bound below the lower, 0A000
// multidimensional arrays or lower bounds other than 1. Thread-safe; no I/O; independent of the
// process locale.
PG_INGEST_API Value parse_text_value(std::string_view text, const ColumnType& type,
                                     std::string_view what = {},
                                     const TextValueOptions& options = {});

}  // namespace pg_ingest
