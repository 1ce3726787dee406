// Binary COPY encoding of typed values, checked byte by byte against the server's wire formats.
#include <climits>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>
#include <pg_ingest/value.hpp>

#include "server_charset.hpp"

using namespace pg_ingest;

namespace {

ColumnType column(std::uint32_t oid, std::int32_t typmod = -1, std::uint32_t element = 0,
                  std::string name = "") {
    ColumnType type;
    BOOST_REQUIRE(ColumnType::from_oid(oid, typmod, element, std::move(name), type));
    return type;
}

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// Hex of the encoded field (length word included).
std::string field(const Value& value, const ColumnType& type) {
    std::string out;
    encode_field(value, type, out, "column \"c\", row 1");
    return hex(out);
}

// The SQLSTATE of the Error encode_field throws; the message must name the column and row.
std::string encode_error(const Value& value, const ColumnType& type) {
    std::string out;
    try {
        encode_field(value, type, out, "column \"c\", row 7");
    } catch (const Error& error) {
        const std::string message = error.what();
        BOOST_TEST(message.find("column \"c\", row 7") != std::string::npos, message);
        BOOST_TEST(!error.retryable());
        return error.sqlstate();
    }
    BOOST_FAIL("value was accepted");
    return {};
}

// The SQLSTATE of the Error that building a value throws ("<none>" when it throws none).
template <typename F>
std::string build_error(F&& build) {
    try {
        build();
    } catch (const Error& error) {
        BOOST_TEST(std::string(error.what()).find("out of range") != std::string::npos,
                   error.what());
        BOOST_TEST(!error.retryable());
        return error.sqlstate();
    }
    return "<none>";
}

std::string key(const Value& value, const ColumnType& type) {
    std::string out;
    append_key_bytes(value, type, out);
    return out;
}

const ColumnType k_int2 = column(21);
const ColumnType k_int4 = column(23);
const ColumnType k_int8 = column(20);
const ColumnType k_float4 = column(700);
const ColumnType k_float8 = column(701);
const ColumnType k_numeric = column(1700);
const ColumnType k_text = column(25);
const ColumnType k_bool = column(16);
const ColumnType k_date = column(1082);
const ColumnType k_time = column(1083);
const ColumnType k_timestamp = column(1114);
const ColumnType k_timestamptz = column(1184);
const ColumnType k_interval = column(1186);
const ColumnType k_uuid = column(2950);
const ColumnType k_bytea = column(17);
const ColumnType k_json = column(114);
const ColumnType k_jsonb = column(3802);

}  // namespace

BOOST_AUTO_TEST_SUITE(values)

BOOST_AUTO_TEST_CASE(null_is_length_minus_one_for_every_type) {
    for (const auto& type : {k_int4, k_text, k_numeric, k_timestamptz, k_uuid, k_jsonb}) {
        BOOST_TEST(field(Value(), type) == "ffffffff");
    }
    BOOST_TEST(Value(nullptr).is_null());
}

BOOST_AUTO_TEST_CASE(integers_are_big_endian_and_range_checked) {
    BOOST_TEST(field(Value(1), k_int2) == "000000020001");
    BOOST_TEST(field(Value(-1), k_int2) == "00000002ffff");
    BOOST_TEST(field(Value(32767), k_int2) == "000000027fff");
    BOOST_TEST(field(Value(-32768), k_int2) == "000000028000");
    BOOST_TEST(encode_error(Value(32768), k_int2) == "22003");
    BOOST_TEST(field(Value(INT32_MIN), k_int4) == "0000000480000000");
    BOOST_TEST(encode_error(Value(std::int64_t{INT32_MAX} + 1), k_int4) == "22003");
    BOOST_TEST(field(Value(INT64_MIN), k_int8) == "000000088000000000000000");
    BOOST_TEST(field(Value(INT64_MAX), k_int8) == "000000087fffffffffffffff");
    BOOST_TEST(encode_error(Value("12"), k_int4) == "42804");
    BOOST_TEST(encode_error(Value(1.5), k_int8) == "42804");
}

BOOST_AUTO_TEST_CASE(floats_are_ieee_big_endian_with_special_values) {
    BOOST_TEST(field(Value(1.0), k_float8) == "000000083ff0000000000000");
    BOOST_TEST(field(Value(1.5f), k_float4) == "000000043fc00000");
    BOOST_TEST(field(Value(std::numeric_limits<double>::infinity()), k_float8) ==
               "000000087ff0000000000000");
    BOOST_TEST(field(Value(-std::numeric_limits<double>::infinity()), k_float4) ==
               "00000004ff800000");
    BOOST_TEST(field(Value(std::nan("")), k_float8).substr(8, 4) == "7ff8");
    BOOST_TEST(encode_error(Value(1e300), k_float4) == "22003");
    BOOST_TEST(encode_error(Value(1e-50), k_float4) == "22003");      // would be 0: an underflow
    BOOST_TEST(field(Value(1e-40), k_float4) != "0000000400000000");  // subnormal: kept
    BOOST_TEST(field(Value(-0.0), k_float4) == "0000000480000000");
    BOOST_TEST(field(Value(2), k_float8) == "000000084000000000000000");  // integers widen
}

BOOST_AUTO_TEST_CASE(numeric_is_base_10000_with_weight_and_display_scale) {
    // 0: no digits
    BOOST_TEST(field(Value(Numeric("0")), k_numeric) == "000000080000000000000000");
    // 12345.678 -> digits 1, 2345, 6780; weight 1; dscale 3
    BOOST_TEST(field(Value(Numeric("12345.678")), k_numeric) ==
               "0000000e"
               "0003"
               "0001"
               "0000"
               "0003"
               "0001"
               "0929"
               "1a7c");
    // -0.0001 -> one digit 1, weight -1, negative, dscale 4
    BOOST_TEST(field(Value(Numeric("-0.0001")), k_numeric) ==
               "0000000a"
               "0001"
               "ffff"
               "4000"
               "0004"
               "0001");
    BOOST_TEST(field(Value(Numeric::nan()), k_numeric) ==
               "00000008"
               "0000"
               "0000"
               "c000"
               "0000");
    BOOST_TEST(field(Value(Numeric("Infinity")), k_numeric) ==
               "00000008"
               "0000"
               "0000"
               "d000"
               "0000");
    BOOST_TEST(field(Value(Numeric("-Infinity")), k_numeric) ==
               "00000008"
               "0000"
               "0000"
               "f000"
               "0000");
    // 10000 -> one digit 1 at weight 1 (trailing zero groups dropped)
    BOOST_TEST(field(Value(Numeric("1e4")), k_numeric) ==
               "0000000a"
               "0001"
               "0001"
               "0000"
               "0000"
               "0001");
}

BOOST_AUTO_TEST_CASE(numeric_text_is_canonical_and_from_digits_is_exact) {
    BOOST_TEST(Numeric("+007.50").text() == "7.50");
    BOOST_TEST(Numeric("-0.000").text() == "0.000");
    BOOST_TEST(Numeric("1.5e-3").text() == "0.0015");
    BOOST_TEST(Numeric("nan").text() == "NaN");
    BOOST_TEST(Numeric::from_digits("12345", 2).text() == "123.45");
    BOOST_TEST(Numeric::from_digits("-5", 3).text() == "-0.005");
    BOOST_TEST(Numeric::from_digits("7", -2).text() == "700");
    BOOST_CHECK_THROW(Numeric("1.2.3"), Error);
    BOOST_CHECK_THROW(Numeric(""), Error);
    BOOST_CHECK_THROW(Numeric::from_digits("12a", 1), Error);
    // Beyond numeric's range is 22003 as in numeric_in; a syntax error stays 22P02.
    const auto sqlstate_of = [](const char* text) {
        try {
            Numeric{text};
        } catch (const Error& e) {
            return e.sqlstate();
        }
        return std::string("accepted");
    };
    BOOST_TEST(sqlstate_of("1e2000000") == "22003");
    BOOST_TEST(sqlstate_of("-1e-2000000") == "22003");
    BOOST_TEST(sqlstate_of("0e1073741823") == "22003");
    BOOST_TEST(sqlstate_of("1e2000000.5") == "22P02");
    BOOST_TEST(Numeric("0.000e2000000").text() == "0");
    BOOST_CHECK_NO_THROW(field(Value(Numeric("0e2000000")), k_numeric));
    const std::string huge = "1" + std::string(999, '0') + "." + std::string(500, '7');
    BOOST_TEST(Numeric(huge).text() == huge);
    BOOST_CHECK_NO_THROW(field(Value(Numeric(huge)), k_numeric));
}

BOOST_AUTO_TEST_CASE(numeric_typmod_rounds_like_the_server_and_rejects_overflow) {
    const ColumnType money = column(1700, ((5 << 16) | 2) + 4, 0, "numeric(5,2)");
    // 999.995 rounds to 1000.00: 4 integer digits > 3 allowed
    BOOST_TEST(encode_error(Value(Numeric("999.995")), money) == "22003");
    BOOST_CHECK_NO_THROW(field(Value(Numeric("999.994")), money));
    BOOST_TEST(encode_error(Value(Numeric("Infinity")), money) == "22003");
    BOOST_TEST(field(Value(Numeric("1.005")), money) == field(Value(Numeric("1.01")), money));
    // Keys equal as the server would store them
    BOOST_TEST(key(Value(Numeric("1.001")), money) == key(Value(Numeric("1.00")), money));
    BOOST_TEST(key(Value(Numeric("1.0")), k_numeric) == key(Value(Numeric("1.000")), k_numeric));
    BOOST_TEST(key(Value(Numeric("1.0")), k_numeric) != key(Value(Numeric("1.01")), k_numeric));
    BOOST_TEST(encode_error(Value("abc"), k_numeric) == "22P02");
    BOOST_TEST(field(Value("2.5"), k_numeric) == field(Value(Numeric("2.5")), k_numeric));
    BOOST_TEST(field(Value(0.1), k_numeric) == field(Value(Numeric("0.1")), k_numeric));
    // A scale above the precision (PostgreSQL 15): numeric(3,5) holds 0.00123 and 0, not 0.0123
    const ColumnType tiny = column(1700, ((3 << 16) | 5) + 4, 0, "numeric(3,5)");
    BOOST_CHECK_NO_THROW(field(Value(Numeric("0.00123")), tiny));
    BOOST_CHECK_NO_THROW(field(Value(Numeric("0")), tiny));
    BOOST_CHECK_NO_THROW(field(Value(Numeric("-0.00999")), tiny));
    BOOST_TEST(encode_error(Value(Numeric("0.0123")), tiny) == "22003");
    BOOST_TEST(encode_error(Value(Numeric("0.009995")), tiny) == "22003");  // rounds to 0.01000
}

BOOST_AUTO_TEST_CASE(text_is_raw_utf8_and_special_characters_pass_unchanged) {
    BOOST_TEST(field(Value("a\tb\nc\\d"), k_text) == "00000007" + hex("a\tb\nc\\d"));
    BOOST_TEST(field(Value(u8"\u00e9\u6f22\U0001F600"), k_text) ==
               "00000009" + hex(u8"\u00e9\u6f22\U0001F600"));
    BOOST_TEST(field(Value(""), k_text) == "00000000");
}

BOOST_AUTO_TEST_CASE(nul_bytes_and_invalid_utf8_are_rejected_clearly) {
    BOOST_TEST(encode_error(Value(std::string("a\0b", 3)), k_text) == "22021");
    BOOST_TEST(encode_error(Value(std::string("\xc3\x28")), k_text) == "22021");
    BOOST_TEST(encode_error(Value(std::string("\xed\xa0\x80")), k_text) == "22021");  // surrogate
    BOOST_TEST(encode_error(Value(std::string("\xc0\xaf")), k_text) == "22021");      // overlong
    BOOST_TEST(encode_error(Value(Json{std::string("{\"a\":\"\0\"}", 9)}), k_jsonb) == "22021");
}

BOOST_AUTO_TEST_CASE(varchar_and_char_lengths_count_characters) {
    const ColumnType varchar3 = column(1043, 3 + 4, 0, "character varying(3)");
    const ColumnType char3 = column(1042, 3 + 4, 0, "character(3)");
    BOOST_CHECK_NO_THROW(field(Value(u8"\u00e9\u00e9\u00e9"), varchar3));  // 3 chars, 6 bytes
    BOOST_TEST(encode_error(Value("abcd"), varchar3) == "22001");
    BOOST_TEST(encode_error(Value("abcd"), char3) == "22001");
    // Trailing spaces beyond the limit are dropped, as the server does.
    BOOST_TEST(field(Value("ab   "), varchar3) == "00000003" + hex("ab "));
    BOOST_TEST(key(Value("ab "), char3) == key(Value("ab"), char3));
    BOOST_TEST(key(Value("ab "), k_text) != key(Value("ab"), k_text));
}

BOOST_AUTO_TEST_CASE(bool_bytea_uuid_and_json_encodings) {
    BOOST_TEST(field(Value(true), k_bool) == "0000000101");
    BOOST_TEST(field(Value(false), k_bool) == "0000000100");
    BOOST_TEST(encode_error(Value(1), k_bool) == "42804");
    BOOST_TEST(field(Value(Bytes{std::string("\0\xff", 2)}), k_bytea) == "0000000200ff");
    const auto uuid = Uuid::parse("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11");
    BOOST_TEST(field(Value(uuid), k_uuid) == "00000010a0eebc999c0b4ef8bb6d6bb9bd380a11");
    BOOST_TEST(field(Value("{a0eebc999c0b4ef8bb6d6bb9bd380a11}"), k_uuid) ==
               field(Value(uuid), k_uuid));
    BOOST_CHECK_THROW(Uuid::parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"), Error);
    BOOST_TEST(encode_error(Value("not-a-uuid"), k_uuid) == "22P02");
    BOOST_TEST(field(Value(Json{"[1]"}), k_json) == "00000003" + hex("[1]"));
    BOOST_TEST(field(Value(Json{"[1]"}), k_jsonb) == "0000000401" + hex("[1]"));  // version 1
    // A document the server would refuse is refused when the row is encoded (by write()),
    // not later by the server with the whole batch: malformed JSON, in a Json or a text value,
    // and the \u0000 escape that jsonb (not json) refuses.
    BOOST_TEST(encode_error(Value(Json{"{\"a\": }"}), k_json) == "22P02");
    BOOST_TEST(encode_error(Value("[1,"), k_jsonb) == "22P02");
    // jsonb numbers are numerics: beyond numeric's format they fail as numeric_in fails (22003),
    // at write(); within it they pass; json keeps any number as text.
    for (const char* out_of_range : {"{\"a\":1e200000}", "{\"a\":1e-200000}", "1e131072",
                                     "-1e-16384", "0.00e-16382", "1e99999999999999999999"}) {
        BOOST_TEST(encode_error(Value(Json{out_of_range}), k_jsonb) == "22003", out_of_range);
    }
    for (const char* in_range : {"1e131071", "-1e-16383", "12345.678e-3", "0", "-0.0e5"}) {
        std::string out;
        BOOST_CHECK_NO_THROW(encode_field(Value(Json{in_range}), k_jsonb, out, "c"));
    }
    std::string as_json;
    BOOST_CHECK_NO_THROW(encode_field(Value(Json{"1e200000"}), k_json, as_json, "c"));
    BOOST_TEST(encode_error(Value(Json{"\"\\u0000\""}), k_jsonb) != "");
    BOOST_TEST(field(Value(Json{"\"\\u0000\""}), k_json) == "00000008" + hex("\"\\u0000\""));
    // Deeper than the client checks (the server's limit is its stack, ~20000 by default): sent
    const std::string deep = std::string(7000, '[') + std::string(7000, ']');
    std::string out;
    BOOST_CHECK_NO_THROW(encode_field(Value(Json{deep}), k_jsonb, out, "column \"c\""));
    BOOST_TEST(out.size() == 4u + 1u + deep.size());
}

BOOST_AUTO_TEST_CASE(dates_count_days_from_2000_and_check_the_range) {
    BOOST_TEST(Date::from_ymd(2000, 1, 1).days == 0);
    BOOST_TEST(Date::from_ymd(1999, 12, 31).days == -1);
    BOOST_TEST(Date::from_ymd(2024, 2, 29).days == 8825);
    BOOST_TEST(Date::parse("1970-01-01").days == -10957);
    BOOST_CHECK_THROW(Date::from_ymd(2023, 2, 29), Error);
    BOOST_CHECK_THROW(Date::parse("2024-1-01"), Error);
    BOOST_TEST(field(Value(Date::from_ymd(2000, 1, 2)), k_date) == "0000000400000001");
    BOOST_TEST(field(Value(Date::infinity()), k_date) == "000000047fffffff");
    BOOST_TEST(encode_error(Value(Date{-2451546}), k_date) == "22008");
    BOOST_TEST(encode_error(Value(Timestamp::from_parts(2024, 1, 1)), k_date) == "42804");
}

// The server's ranges: dates 4714-11-24 BC .. 5874897-12-31, timestamps 4714-11-24 BC ..
// 294276-12-31 23:59:59.999999. A value past them is refused when it is built: the arithmetic
// would overflow into a plausible wrong date ("586542-01-01" came out as 1987-12-14).
BOOST_AUTO_TEST_CASE(dates_past_the_server_range_are_refused_when_built) {
    BOOST_TEST(Date::from_ymd(-4713, 11, 24).days == -2451545);
    BOOST_TEST(Date::from_ymd(5874897, 12, 31).days == 2145031948);
    BOOST_TEST(Date::parse("5874897-12-31").days == 2145031948);
    BOOST_TEST(field(Value(Date::from_ymd(5874897, 12, 31)), k_date) == "000000047fda970c");
    BOOST_TEST(build_error([] { Date::from_ymd(-4713, 11, 23); }) == "22008");
    BOOST_TEST(build_error([] { Date::from_ymd(5874898, 1, 1); }) == "22008");
    BOOST_TEST(build_error([] { Date::parse("5874898-01-01"); }) == "22008");
    BOOST_TEST(build_error([] { Date::parse("9999999-12-31"); }) == "22008");
    BOOST_TEST(build_error([] { Date::from_ymd(11761191, 1, 1); }) == "22008");
    BOOST_TEST(build_error([] { Date::from_ymd(INT32_MAX, 12, 31); }) == "22008");
    BOOST_TEST(build_error([] { Date::from_ymd(INT32_MIN, 1, 1); }) == "22008");
}

BOOST_AUTO_TEST_CASE(timestamps_past_the_server_range_are_refused_when_built) {
    const std::int64_t first = -211813488000000000LL;  // 4714-11-24 00:00:00 BC
    const std::int64_t last = 9223371331199999999LL;   // 294276-12-31 23:59:59.999999
    BOOST_TEST(Timestamp::from_parts(-4713, 11, 24).microseconds == first);
    BOOST_TEST(Timestamp::from_parts(294276, 12, 31, 23, 59, 59, 999999).microseconds == last);
    BOOST_TEST(Timestamp::parse("294276-12-31 23:59:59.999999").microseconds == last);
    BOOST_TEST(field(Value(Timestamp{last}), k_timestamp) == "000000087fffff5bb3b29fff");
    BOOST_TEST(build_error([] { Timestamp::from_parts(-4713, 11, 23, 23, 59, 59, 999999); }) ==
               "22008");
    BOOST_TEST(build_error([] { Timestamp::from_parts(294277, 1, 1); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::from_parts(294276, 12, 31, 24); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::from_parts(586542, 1, 1); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::from_parts(INT32_MAX, 12, 31); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::from_parts(INT32_MIN, 1, 1); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::parse("294277-01-01 00:00:00"); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::parse("586542-01-01 00:00:00"); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::parse("9999999-12-31 23:59:59"); }) == "22008");
    // 1970-01-01 lies 946684800 s before the epoch: the first instant in Unix microseconds.
    const std::int64_t unix_first = first + 946684800000000LL;
    BOOST_TEST(Timestamp::from_unix_micros(unix_first).microseconds == first);
    BOOST_TEST(build_error([&] { Timestamp::from_unix_micros(unix_first - 1); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::from_unix_micros(INT64_MIN); }) == "22008");
    BOOST_TEST(build_error([] { TimestampTz::from_unix_micros(INT64_MIN); }) == "22008");
    // Infinities are not dates: they stay as they are.
    BOOST_TEST(field(Value(Timestamp::minus_infinity()), k_timestamp) ==
               "000000088000000000000000");
}

// timestamptz: the instant (UTC) must be in range, as on the server; a reading at an offset
// may lie past the last day.
BOOST_AUTO_TEST_CASE(timestamptz_past_the_server_range_is_refused_when_built) {
    const std::int64_t first = -211813488000000000LL;
    const std::int64_t last = 9223371331199999999LL;
    BOOST_TEST(TimestampTz::parse("294276-12-31 23:59:59.999999Z").microseconds == last);
    BOOST_TEST(TimestampTz::parse("294277-01-01 00:30:00+01").microseconds ==
               last + 1 - 1800000000LL);
    BOOST_TEST(TimestampTz::from_parts(-4713, 11, 24, 1, 0, 0, 0, 3600).microseconds == first);
    BOOST_TEST(TimestampTz::from_parts(294276, 12, 31, 23, 59, 59, 999999, 0).microseconds == last);
    BOOST_TEST(build_error([] { TimestampTz::parse("294276-12-31 23:30:00-01"); }) == "22008");
    BOOST_TEST(build_error([] { TimestampTz::parse("586542-01-01 00:00:00Z"); }) == "22008");
    BOOST_TEST(build_error([] { TimestampTz::from_parts(-4713, 11, 24, 0, 0, 0, 0, 3600); }) ==
               "22008");
    BOOST_TEST(build_error([] { TimestampTz::from_parts(294277, 1, 1, 0, 0, 0, 0, 0); }) ==
               "22008");
    BOOST_TEST(build_error([] {
                   TimestampTz::from_parts(INT32_MAX, 1, 1, 0, 0, 0, 0, INT32_MIN);
               }) == "22008");
}

BOOST_AUTO_TEST_CASE(times_and_timestamps_keep_microseconds) {
    BOOST_TEST(Time::parse("23:59:59.999999").microseconds == 86399999999LL);
    BOOST_TEST(Time::parse("24:00").microseconds == 86400000000LL);
    BOOST_CHECK_THROW(Time::parse("24:00:01"), Error);
    BOOST_CHECK_THROW(Time::parse("12:00:00.1234567"), Error);  // no silent truncation
    const auto t = Timestamp::parse("2000-01-01 00:00:00.000001");
    BOOST_TEST(t.microseconds == 1);
    BOOST_TEST(Timestamp::parse("2000-01-01T00:00:01").microseconds == 1000000);
    BOOST_TEST(Timestamp::from_unix_micros(0).microseconds == -946684800000000LL);
    BOOST_TEST(field(Value(t), k_timestamp) == "000000080000000000000001");
    BOOST_TEST(field(Value(Timestamp::infinity()), k_timestamp) == "000000087fffffffffffffff");
    BOOST_TEST(encode_error(Value(Timestamp{-211813488000000001LL}), k_timestamp) == "22008");
    // Distinct by one microsecond: distinct keys.
    BOOST_TEST(key(Value(Timestamp{5}), k_timestamp) != key(Value(Timestamp{6}), k_timestamp));
}

BOOST_AUTO_TEST_CASE(timestamptz_offsets_resolve_to_one_instant) {
    const auto utc = TimestampTz::parse("2024-03-10 12:00:00Z");
    BOOST_TEST(TimestampTz::parse("2024-03-10 17:30:00+05:30").microseconds == utc.microseconds);
    BOOST_TEST(TimestampTz::parse("2024-03-10T07:00:00-0500").microseconds == utc.microseconds);
    BOOST_TEST(TimestampTz::parse("2024-03-10 12:00:00").microseconds == utc.microseconds);
    BOOST_TEST(TimestampTz::from_parts(2024, 3, 10, 13, 0, 0, 0, 3600).microseconds ==
               utc.microseconds);
    BOOST_TEST(TimestampTz::parse("2000-01-01 00:00:00.000001+00").microseconds == 1);
    BOOST_CHECK_THROW(TimestampTz::parse("2024-03-10 12:00:00 Europe/Berlin"), Error);
    BOOST_TEST(encode_error(Value(Timestamp{0}), k_timestamptz) == "42804");
}

BOOST_AUTO_TEST_CASE(interval_is_micros_days_months) {
    BOOST_TEST(field(Value(Interval{1, 2, 3}), k_interval) ==
               "00000010"
               "0000000000000001"
               "00000002"
               "00000003");
    BOOST_TEST(field(Value(Interval{-1, 0, 0}), k_interval).substr(8, 16) == "ffffffffffffffff");
}

BOOST_AUTO_TEST_CASE(one_dimensional_arrays_with_nulls) {
    const ColumnType int4_array = column(1007, -1, 23);
    BOOST_TEST(field(Value(Array{{Value(1), Value(), Value(3)}}), int4_array) ==
               "00000028"
               "00000001"
               "00000001"
               "00000017"
               "00000003"
               "00000001"
               "0000000400000001"
               "ffffffff"
               "0000000400000003");
    BOOST_TEST(field(Value(Array{}), int4_array) ==
               "0000000c"
               "00000000"
               "00000000"
               "00000017");
    const std::string nested = encode_error(Value(Array{{Value(Array{{Value(1)}})}}), int4_array);
    BOOST_TEST(nested == "42804");
    BOOST_TEST(encode_error(Value(Array{{Value(1), Value("x")}}), int4_array) == "42804");
    BOOST_TEST(encode_error(Value(Array{{Value(std::int64_t{1} << 40)}}), int4_array) == "22003");
    const ColumnType varchar_array = column(1015, 2 + 4, 1043);
    BOOST_TEST(encode_error(Value(Array{{Value("abc")}}), varchar_array) == "22001");
}

// A value of another numeric kind converts as the server's cast would: what INSERT stores when
// it is given the value as a parameter of its own type.
BOOST_AUTO_TEST_CASE(numbers_of_another_kind_convert_as_the_servers_casts_do) {
    // int8 -> float4 rounds once: through a double, 2^62 + 2^38 + 1 would round twice (down to
    // 2^62, 5e800000) where the server rounds it up (5e800001).
    BOOST_TEST(field(Value(std::int64_t{4611686293305294849}), k_float4) == "000000045e800001");
    // float8 -> float4: a value that rounds to FLT_MAX is stored, one that rounds to
    // infinity is an overflow.
    BOOST_TEST(field(Value(3.4028235e38), k_float4) == "000000047f7fffff");
    BOOST_TEST(field(Value(-3.40282356e38), k_float4) == "00000004ff7fffff");
    BOOST_TEST(encode_error(Value(3.4028236e38), k_float4) == "22003");
    // float8 -> numeric keeps DBL_DIG (15) significant digits.
    const auto numeric_field = [](const std::string& text) {
        return field(Value(Numeric(text)), k_numeric);
    };
    BOOST_TEST(field(Value(0.1 + 0.2), k_numeric) == numeric_field("0.3"));
    BOOST_TEST(field(Value(123456789.12345678), k_numeric) == numeric_field("123456789.123457"));
    BOOST_TEST(field(Value(1e300), k_numeric) == numeric_field("1e300"));
    BOOST_TEST(field(Value(-2.5e-300), k_numeric) == numeric_field("-2.5e-300"));
}

// numeric has no digit limit of its own on the wire: a value the server stores is sent.
BOOST_AUTO_TEST_CASE(numerics_with_thousands_of_digits_are_encoded) {
    const std::string digits(12001, '7');
    std::string out;
    encode_field(Value(Numeric(digits)), k_numeric, out, "");
    // ndigits: 12001 decimal digits are 3001 base-10000 digits; weight 3000.
    BOOST_TEST(hex(out.substr(4, 4)) == "0bb90bb8");
    BOOST_TEST(out.size() == 4 + 8 + 2 * 3001u);
}

// Numeric::from_digits with any int scale: no overflow of -scale.
BOOST_AUTO_TEST_CASE(numeric_from_digits_takes_every_int_scale) {
    for (const int scale : {INT_MIN, INT_MAX}) {
        std::string state = "<none>";
        try {
            Numeric::from_digits("1", scale);
        } catch (const Error& error) {
            state = error.sqlstate();
            BOOST_TEST_MESSAGE(error.what());
        }
        BOOST_TEST(state == "22003");
    }
    BOOST_TEST(Numeric::from_digits("15", 1).text() == "1.5");
}

// ISO text as the server reads it: no year 0 (an error there, not 1 BC), and second 60 is the
// next minute's 0 (as far as 24:00:00 for a time).
BOOST_AUTO_TEST_CASE(iso_text_has_no_year_zero_and_reads_second_sixty_as_the_server_does) {
    BOOST_TEST(build_error([] { Date::parse("0000-01-01"); }) == "22008");
    BOOST_TEST(build_error([] { Timestamp::parse("0000-12-31 00:00:00"); }) == "22008");
    BOOST_TEST(Date::parse("0001-01-01").days == Date::from_ymd(1, 1, 1).days);
    BOOST_TEST(Date::from_ymd(0, 1, 1).days == Date::from_ymd(1, 1, 1).days - 366);  // 1 BC
    BOOST_TEST(Timestamp::parse("2024-01-01 23:59:60").microseconds ==
               Timestamp::from_parts(2024, 1, 2).microseconds);
    BOOST_TEST(Timestamp::parse("2024-02-28 12:30:60.5").microseconds ==
               Timestamp::from_parts(2024, 2, 28, 12, 31, 0, 500000).microseconds);
    BOOST_TEST(TimestampTz::parse("2016-12-31 23:59:60Z").microseconds ==
               TimestampTz::from_parts(2017, 1, 1, 0, 0, 0, 0, 0).microseconds);
    BOOST_TEST(Time::parse("23:59:60").microseconds == 86400000000LL);
    BOOST_TEST(Time::from_hms(10, 59, 60).microseconds == Time::from_hms(11, 0, 0).microseconds);
    BOOST_TEST(build_error([] { Time::parse("23:59:60.5"); }) == "22008");
    BOOST_TEST(build_error([] { Time::parse("12:00:61"); }) == "22008");
    BOOST_TEST(build_error([] { Time::from_hms(24, 0, 0, 1); }) == "22008");
}

// The server checks a timestamp's range before rounding it to the column's precision: a value
// just before the end that rounds past it is stored (sent unrounded for the server to round).
BOOST_AUTO_TEST_CASE(a_timestamp_that_rounds_past_the_end_is_sent_for_the_server_to_round) {
    const std::int64_t last = 9223371331199999999LL;  // 294276-12-31 23:59:59.999999
    BOOST_TEST(field(Value(Timestamp{last}), column(1114, 0)) == "000000087fffff5bb3b29fff");
    BOOST_TEST(field(Value(TimestampTz{last - 600000}), column(1184, 0)) ==
               field(Value(TimestampTz{last - 999999}), k_timestamptz));  // rounds down: rounded
}

// An array element's error names the element after the column and row, and its type with the
// column's typmod.
BOOST_AUTO_TEST_CASE(array_element_errors_name_the_element_and_its_type) {
    const ColumnType varchar_array = column(1015, 2 + 4, 1043, "character varying(2)[]");
    std::string out;
    try {
        encode_field(Value(Array{{Value("ab"), Value("abc")}}), varchar_array, out,
                     "column \"c\", row 3");
        BOOST_FAIL("accepted");
    } catch (const Error& error) {
        BOOST_TEST(std::string(error.what()) ==
                   "column \"c\", row 3, element 2: value too long for type character "
                   "varying(2) (3 characters)");
    }
    try {
        encode_field(Value(Array{{Value(1), Value("x")}}), column(1007, -1, 23), out, "");
        BOOST_FAIL("accepted");
    } catch (const Error& error) {
        BOOST_TEST(std::string(error.what()).rfind("element 2: ", 0) == 0, error.what());
    }
}

BOOST_AUTO_TEST_CASE(unsupported_types_are_refused_by_from_oid) {
    ColumnType type;
    BOOST_TEST(!ColumnType::from_oid(600, -1, 0, "point", type));       // point
    BOOST_TEST(!ColumnType::from_oid(1017, -1, 600, "point[]", type));  // point[]
    BOOST_TEST(ColumnType::from_oid(1009, -1, 25, "text[]", type));
    BOOST_TEST((type.kind == TypeKind::array));
}

BOOST_AUTO_TEST_CASE(float_keys_treat_signed_zeros_and_nans_as_equal) {
    BOOST_TEST(key(Value(0.0), k_float8) == key(Value(-0.0), k_float8));
    BOOST_TEST(key(Value(std::nan("1")), k_float8) == key(Value(-std::nan("2")), k_float8));
    BOOST_TEST(key(Value(1.0), k_float8) != key(Value(2.0), k_float8));
    BOOST_TEST(key(Value(), k_int4) != key(Value(0), k_int4));
}

BOOST_AUTO_TEST_CASE(interval_keys_compare_by_span_as_the_server_does) {
    const std::int64_t day = 86400000000LL;
    BOOST_TEST(key(Value(Interval{0, 1, 0}), k_interval) ==
               key(Value(Interval{day, 0, 0}), k_interval));  // '1 day' = '24 hours'
    BOOST_TEST(key(Value(Interval{0, 0, 1}), k_interval) ==
               key(Value(Interval{0, 30, 0}), k_interval));  // '1 mon' = '30 days'
    BOOST_TEST(key(Value(Interval{0, 1, 0}), k_interval) !=
               key(Value(Interval{day + 1, 0, 0}), k_interval));
    BOOST_TEST(key(Value(Interval{-day, 1, 0}), k_interval) ==
               key(Value(Interval{0, 0, 0}), k_interval));
}

// timestamp(0) stores 12:00:00.4 and 12:00:00.3 as 12:00:00: one key on the server, so one
// key in a batch (else the later write would not win, or a statement would hit the row twice).
BOOST_AUTO_TEST_CASE(time_keys_are_rounded_to_their_column_precision_as_the_server_does) {
    const ColumnType ts0 = column(1114, 0);
    BOOST_TEST(key(Value(Timestamp{400000}), ts0) == key(Value(Timestamp{300000}), ts0));
    BOOST_TEST(key(Value(Timestamp{400000}), ts0) == key(Value(Timestamp{0}), ts0));
    // half away from zero, both sides of the epoch
    BOOST_TEST(key(Value(Timestamp{500000}), ts0) == key(Value(Timestamp{1000000}), ts0));
    BOOST_TEST(key(Value(Timestamp{-500000}), ts0) == key(Value(Timestamp{-1000000}), ts0));
    BOOST_TEST(key(Value(Timestamp{-400000}), ts0) == key(Value(Timestamp{0}), ts0));
    BOOST_TEST(key(Value(Timestamp{499999}), ts0) != key(Value(Timestamp{500000}), ts0));
    BOOST_TEST(key(Value(Timestamp::infinity()), ts0) != key(Value(Timestamp{0}), ts0));
    const ColumnType tstz3 = column(1184, 3);
    BOOST_TEST(key(Value(TimestampTz{1000400}), tstz3) == key(Value(TimestampTz{1000000}), tstz3));
    BOOST_TEST(key(Value(TimestampTz{1000500}), tstz3) == key(Value(TimestampTz{1001000}), tstz3));
    const ColumnType time1 = column(1083, 1);
    BOOST_TEST(key(Value(Time{149999}), time1) == key(Value(Time{100000}), time1));
    BOOST_TEST(key(Value(Time{150000}), time1) == key(Value(Time{200000}), time1));
    // timestamp(0)[]: each element rounded as the server's array input rounds it
    const ColumnType ts0_array = column(1115, 0, 1114, "timestamp(0) without time zone[]");
    BOOST_TEST(key(Value(Array{{Value(Timestamp{400000}), Value()}}), ts0_array) ==
               key(Value(Array{{Value(Timestamp{300000}), Value()}}), ts0_array));
    BOOST_TEST(key(Value(Array{{Value(Timestamp{400000})}}), ts0_array) !=
               key(Value(Array{{Value(Timestamp{500000})}}), ts0_array));
    // without a precision, or at 6, every microsecond counts
    BOOST_TEST(key(Value(Timestamp{5}), k_timestamp) != key(Value(Timestamp{6}), k_timestamp));
    BOOST_TEST(key(Value(Timestamp{5}), column(1114, 6)) !=
               key(Value(Timestamp{6}), column(1114, 6)));
    // interval(0): the microseconds are rounded before the span is compared
    const ColumnType interval0 = column(1186, (0x7FFF << 16) | 0);
    BOOST_TEST(key(Value(Interval{1400000, 0, 0}), interval0) ==
               key(Value(Interval{1000000, 0, 0}), interval0));
    BOOST_TEST(key(Value(Interval{1400000, 0, 0}), k_interval) !=
               key(Value(Interval{1000000, 0, 0}), k_interval));
}

BOOST_AUTO_TEST_CASE(types_whose_equality_bytes_cannot_show_are_refused_as_keys) {
    // interval day to second: fields are truncated (not reproduced); interval(3) is rounded
    BOOST_TEST(
        !key_bytes_supported(column(1186, ((0x0008 | 0x0400 | 0x0800 | 0x1000) << 16) | 0xFFFF)));
    BOOST_TEST(key_bytes_supported(column(1186, (0x7FFF << 16) | 3)));
    // arrays of timestamp(0): elements are rounded like the scalars
    BOOST_TEST(key_bytes_supported(column(1115, 0, 1114, "timestamp(0) without time zone[]")));
    BOOST_TEST(key_bytes_supported(column(1115, -1, 1114, "timestamp without time zone[]")));
    ColumnType ci_text = k_text;
    ci_text.deterministic_collation = false;  // e.g. an ICU collation with strength=secondary
    BOOST_TEST(!key_bytes_supported(ci_text));
    BOOST_TEST(key_bytes_supported(k_int4));
    BOOST_TEST(!key_bytes_supported(k_jsonb));
    BOOST_TEST(!key_bytes_supported(column(1231, -1, 1700, "numeric[]")));
    BOOST_TEST(!key_bytes_supported(column(1022, -1, 701, "double precision[]")));
    BOOST_TEST(!key_bytes_supported(column(1187, -1, 1186, "interval[]")));
    BOOST_TEST(key_bytes_supported(column(1009, -1, 25, "text[]")));
    BOOST_TEST(key_bytes_supported(k_interval));
    BOOST_TEST(key_bytes_supported(k_numeric));
    BOOST_TEST(key_bytes_supported(k_text));
}

BOOST_AUTO_TEST_CASE(copy_header_and_trailer_are_the_documented_bytes) {
    BOOST_TEST(hex(std::string(binary_copy_header())) ==
               "5047434f50590aff0d0a00"
               "00000000"
               "00000000");
    BOOST_TEST(hex(std::string(binary_copy_trailer())) == "ffff");
}

// A single-byte database encoding holds ASCII and the characters its table lists; the encoder
// refuses any other character (22P05) and names the first one by its UTF-8 bytes and offset.
BOOST_AUTO_TEST_CASE(text_with_a_character_the_database_encoding_lacks_is_refused_with_22p05) {
    const auto charset =
        std::make_shared<const ServerCharset>("TEST", std::vector<std::uint32_t>{0x20AC, 0xE9});
    BOOST_TEST(charset->holds('a'));
    BOOST_TEST(charset->holds(0xE9));
    BOOST_TEST(!charset->holds(0xE8));
    std::size_t length = 0;
    BOOST_TEST(charset->first_unheld("plain \xc3\xa9\xe2\x82\xac", length) == std::string::npos);
    BOOST_TEST(charset->first_unheld("\xc3\xa9 \xf0\x9f\x98\x80!", length) == 3u);
    BOOST_TEST(length == 4u);

    ColumnType text = k_text;
    text.charset = charset;
    BOOST_TEST(field(Value("caf\xc3\xa9 \xe2\x82\xac"), text) == "00000009636166c3a920e282ac");
    BOOST_TEST(encode_error(Value("caf\xc3\xa8"), text) == "22P05");
    std::string out;
    try {
        encode_field(Value("ab\xc3\xa8"), text, out, "column \"c\", row 1");
        BOOST_FAIL("accepted");
    } catch (const Error& error) {
        BOOST_TEST(std::string(error.what()) ==
                   "column \"c\", row 1: character with byte sequence 0xc3 0xa8 in encoding "
                   "\"UTF8\" has no equivalent in encoding \"TEST\" (the database's encoding), at "
                   "offset 2");
    }
    ColumnType json = k_jsonb;
    json.charset = charset;
    BOOST_TEST(encode_error(Value(Json{"{\"\xc3\xa8\": 1}"}), json) == "22P05");
    ColumnType array = column(1009, -1, 25, "text[]");  // text[]
    array.charset = charset;
    BOOST_TEST(encode_error(Value(Array{{Value("\xc3\xa9"), Value("\xc3\xa8")}}), array) ==
               "22P05");
    // Without a character set (a UTF8 database) everything valid is sent.
    BOOST_TEST(field(Value("\xc3\xa8"), k_text).substr(8) == "c3a8");
}

BOOST_AUTO_TEST_SUITE_END()
