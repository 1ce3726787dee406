// pg_ingest::Value / Row — typed values and their binary COPY encoding.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// An exact decimal, kept as text ("-12.340", "NaN", "Infinity", "-Infinity"). Validated when
// constructed: throws pg_ingest::Error 22P02 for anything else. Precision is unlimited (the
// server's numeric limits apply: 131072 digits before the point, 16383 after).
class PG_INGEST_API Numeric {
  public:
    explicit Numeric(std::string_view text);
    // unscaled_digits * 10^-scale, e.g. ("12345", 2) is 123.45; digits may have a leading '-'.
    static Numeric from_digits(std::string_view unscaled_digits, int scale);
    static Numeric nan() { return Numeric("NaN"); }
    // Canonical text: no leading '+', no leading zeros, the scale as given ("1.50" stays).
    const std::string& text() const noexcept { return m_text; }
    bool operator==(const Numeric& other) const { return m_text == other.m_text; }

  private:
    std::string m_text;
};

// A calendar date, stored as days since 2000-01-01 (the server's epoch). Infinity allowed.
struct PG_INGEST_API Date {
    std::int32_t days = 0;
    // Proleptic Gregorian; year 0 is 1 BC. Throws Error 22008 for an invalid day or a date
    // outside the server's range, 4714-11-24 BC (-4713-11-24) .. 5874897-12-31.
    static Date from_ymd(int year, int month, int day);
    // "YYYY-MM-DD" (4 to 7 digit years, AD); throws Error 22007 when malformed, 22008 when out
    // of range or the year is 0000 (an error on the server too).
    static Date parse(std::string_view text);
    static Date infinity() { return Date{INT32_MAX}; }
    static Date minus_infinity() { return Date{INT32_MIN}; }
    bool operator==(const Date& other) const { return days == other.days; }
};

// Time of day in microseconds since midnight, 0 .. 24:00:00 inclusive. As on the server, second
// 60 is allowed (read as the next minute's 0: 23:59:60 is 24:00:00 here, the next day's
// 00:00:00 in a Timestamp); past 24:00:00 is Error 22008.
struct PG_INGEST_API Time {
    std::int64_t microseconds = 0;
    static Time from_hms(int hour, int minute, int second, int microsecond = 0);
    // "HH:MM[:SS[.ffffff]]"; throws Error 22007 when malformed.
    static Time parse(std::string_view text);
    bool operator==(const Time& other) const { return microseconds == other.microseconds; }
};

// timestamp without time zone: microseconds since 2000-01-01 00:00:00 (a wall-clock reading).
// Built values lie in the server's range, 4714-11-24 00:00:00 BC .. 294276-12-31
// 23:59:59.999999: from_parts(), from_unix_micros() and parse() throw Error 22008 past it (and
// 22008 for an invalid day or time of day). infinity() and minus_infinity() are outside it.
struct PG_INGEST_API Timestamp {
    std::int64_t microseconds = 0;
    static Timestamp from_parts(int year, int month, int day, int hour = 0, int minute = 0,
                                int second = 0, int microsecond = 0);
    // Microseconds since 1970-01-01 00:00:00.
    static Timestamp from_unix_micros(std::int64_t micros);
    // "YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]"; throws Error 22007 when malformed.
    static Timestamp parse(std::string_view text);
    static Timestamp infinity() { return Timestamp{INT64_MAX}; }
    static Timestamp minus_infinity() { return Timestamp{INT64_MIN}; }
    bool operator==(const Timestamp& other) const { return microseconds == other.microseconds; }
};

// timestamp with time zone: an instant, microseconds since 2000-01-01 00:00:00 UTC. The range
// is Timestamp's, for the instant in UTC (as on the server): a reading at an offset may lie past
// it, Error 22008 when the instant does.
struct PG_INGEST_API TimestampTz {
    std::int64_t microseconds = 0;
    // A wall-clock reading at a fixed UTC offset (seconds east of Greenwich, e.g. +19800 for
    // +05:30). Named zones (Europe/Berlin) are not resolved by the client: convert first.
    static TimestampTz from_parts(int year, int month, int day, int hour, int minute, int second,
                                  int microsecond, int utc_offset_seconds);
    static TimestampTz from_unix_micros(std::int64_t micros);
    // ISO 8601 with an offset or Z: "2024-03-10 12:00:00.5+05:30", "2024-03-10T12:00:00Z";
    // without an offset UTC is assumed. Throws Error 22007 when malformed.
    static TimestampTz parse(std::string_view text);
    static TimestampTz infinity() { return TimestampTz{INT64_MAX}; }
    static TimestampTz minus_infinity() { return TimestampTz{INT64_MIN}; }
    bool operator==(const TimestampTz& other) const { return microseconds == other.microseconds; }
};

struct PG_INGEST_API Interval {
    std::int64_t microseconds = 0;
    std::int32_t days = 0;
    std::int32_t months = 0;
    bool operator==(const Interval& other) const {
        return microseconds == other.microseconds && days == other.days && months == other.months;
    }
};

struct PG_INGEST_API Uuid {
    std::array<std::uint8_t, 16> bytes{};
    // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (or 32 hex digits, optional braces); Error 22P02.
    static Uuid parse(std::string_view text);
    bool operator==(const Uuid& other) const { return bytes == other.bytes; }
};

// bytea contents.
struct PG_INGEST_API Bytes {
    std::string data;
    bool operator==(const Bytes& other) const { return data == other.data; }
};

// JSON document text for json or jsonb columns (the server validates it).
struct PG_INGEST_API Json {
    std::string text;
    bool operator==(const Json& other) const { return text == other.text; }
};

class Value;

// A one-dimensional array (lower bound 1) of scalar values of one kind; NULL elements allowed.
struct PG_INGEST_API Array {
    std::vector<Value> elements;
    bool operator==(const Array& other) const;
};

// One typed value, or SQL NULL (the default). Integers of any width are kept as int64 and
// floats as double; the target column decides the wire width, with range checks. Into another
// numeric type a value converts as the server's cast does: a double into numeric keeps 15
// significant digits (float8 -> numeric; a float is a double here), an integer into real is
// rounded once (int8 -> float4).
class PG_INGEST_API Value {
  public:
    enum class Kind {
        null,
        boolean,
        integer,
        floating,
        text,
        numeric,
        date,
        time,
        timestamp,
        timestamptz,
        interval,
        uuid,
        bytes,
        json,
        array
    };
    using Storage =
        std::variant<std::monostate, bool, std::int64_t, double, std::string, Numeric, Date, Time,
                     Timestamp, TimestampTz, Interval, Uuid, Bytes, Json, Array>;

    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool value) : m_storage(value) {}
    template <typename T,
              typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                                          !std::is_same_v<T, char>>>
    Value(T value) : m_storage(static_cast<std::int64_t>(value)) {
        static_assert(sizeof(T) < 8 || std::is_signed_v<T>,
                      "uint64_t does not fit bigint: convert explicitly");
    }
    Value(double value) : m_storage(value) {}
    Value(float value) : m_storage(static_cast<double>(value)) {}
    Value(std::string value) : m_storage(std::move(value)) {}
    Value(std::string_view value) : m_storage(std::string(value)) {}
    Value(const char* value) : m_storage(std::string(value)) {}
    Value(Numeric value) : m_storage(std::move(value)) {}
    Value(Date value) : m_storage(value) {}
    Value(Time value) : m_storage(value) {}
    Value(Timestamp value) : m_storage(value) {}
    Value(TimestampTz value) : m_storage(value) {}
    Value(Interval value) : m_storage(value) {}
    Value(Uuid value) : m_storage(value) {}
    Value(Bytes value) : m_storage(std::move(value)) {}
    Value(Json value) : m_storage(std::move(value)) {}
    Value(Array value) : m_storage(std::move(value)) {}

    static Value null() { return Value(); }

    Kind kind() const noexcept { return static_cast<Kind>(m_storage.index()); }
    bool is_null() const noexcept { return kind() == Kind::null; }
    const Storage& storage() const noexcept { return m_storage; }
    bool operator==(const Value& other) const { return m_storage == other.m_storage; }
    bool operator!=(const Value& other) const { return !(*this == other); }

  private:
    Storage m_storage;
};

PG_INGEST_API const char* to_string(Value::Kind kind) noexcept;

// Values in the writer's column order.
using Row = std::vector<Value>;

// The server types a value can be encoded to.
enum class TypeKind {
    boolean,
    int2,
    int4,
    int8,
    float4,
    float8,
    numeric,
    text,
    varchar,
    bpchar,
    json,
    jsonb,
    bytea,
    date,
    time,
    timestamp,
    timestamptz,
    interval,
    uuid,
    array
};

// The characters a database whose encoding is not UTF-8 can hold (opaque; see ColumnType).
class ServerCharset;

// A target column's type as the encoder needs it.
struct PG_INGEST_API ColumnType {
    TypeKind kind = TypeKind::text;
    std::uint32_t oid = 0;  // the column's type (for arrays, the array type)
    // varchar(n)/char(n): n + 4; numeric(p,s): ((p << 16) | s) + 4; time(p), timestamp(p): p;
    // interval: (fields << 16) | p; -1: none.
    std::int32_t typmod = -1;
    TypeKind element_kind = TypeKind::text;  // arrays only
    std::uint32_t element_oid = 0;           // arrays only
    std::string name;                        // as format_type() prints it, for messages
    // False when the column's collation is nondeterministic (e.g. case-insensitive ICU): its
    // equality is not the bytes'.
    bool deterministic_collation = true;
    // The database's character set when its encoding is a single-byte one (LATIN1, WIN1252 ...;
    // set by TableSchema::load): text, json and arrays of them holding a character the encoding
    // lacks are refused by the encoder with 22P05, as the server would refuse the whole batch.
    // Null: nothing to check (UTF8, SQL_ASCII) or not checked (EUC_*, MULE_INTERNAL: the server
    // refuses such a character when the batch is sent). Shared, immutable.
    std::shared_ptr<const ServerCharset> charset;

    // The ColumnType for a built-in type oid (element_oid for arrays); false when unsupported.
    static bool from_oid(std::uint32_t oid, std::int32_t typmod, std::uint32_t element_oid,
                         std::string name, ColumnType& out);
};

// Appends the binary COPY field for `value` (int32 length, -1 for NULL, then the bytes) to `out`.
// Checks that the value fits the column: wrong kind 42804, out of range 22003, date/time out of
// range 22008, string too long for varchar(n)/char(n) 22001, NUL byte or invalid UTF-8 in text
// 22021, numeric precision overflow 22003. Errors are pg_ingest::Error (not retryable) whose
// message starts with `what` (e.g. "column \"id\", row 17"); `out` may then hold a partial field
// (callers discard it). Does not check NOT NULL.
PG_INGEST_API void encode_field(const Value& value, const ColumnType& type, std::string& out,
                                std::string_view what);

// Appends the bytes identifying `value` as a key: equal keys (as the server compares them for
// the built-in types: 1.0 = 1.00, 'a ' = 'a' for char(n), -0.0 = 0.0, '1 day' = '24 hours' for
// interval, and times, timestamps and intervals rounded to their column's precision as the
// server rounds them, so 12:00:00.4 = 12:00:00.3 for timestamp(0)) give equal bytes. Must be called
// with a value that encode_field() accepted for `type` whose key_bytes_supported() is true.
PG_INGEST_API void append_key_bytes(const Value& value, const ColumnType& type, std::string& out);
// False for types whose equality the key bytes cannot reproduce (json, jsonb, arrays of numeric,
// floating point, interval, char(n) or json elements, intervals restricted to fields
// (interval day), text in a nondeterministic collation): the Writer refuses them as keys.
PG_INGEST_API bool key_bytes_supported(const ColumnType& type) noexcept;

// The binary COPY file header and trailer.
PG_INGEST_API std::string_view binary_copy_header() noexcept;
PG_INGEST_API std::string_view binary_copy_trailer() noexcept;

}  // namespace pg_ingest
