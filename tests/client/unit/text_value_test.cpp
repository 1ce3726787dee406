// parse_text_value: PostgreSQL text-format fields into typed Values, with the server's errors.
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <system_error>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>
#include <pg_ingest/text_value.hpp>
#include <pg_ingest/value.hpp>

// Printers for failed assertions.
namespace pg_ingest {
std::ostream& operator<<(std::ostream& out, Value::Kind kind) {
    return out << to_string(kind);
}
std::ostream& operator<<(std::ostream& out, const Value& value) {
    out << to_string(value.kind());
    const auto& s = value.storage();
    switch (value.kind()) {
        case Value::Kind::boolean:
            return out << ' ' << std::get<bool>(s);
        case Value::Kind::integer:
            return out << ' ' << std::get<std::int64_t>(s);
        case Value::Kind::floating:
            return out << ' ' << std::get<double>(s);
        case Value::Kind::text:
            return out << " \"" << std::get<std::string>(s) << '"';
        case Value::Kind::numeric:
            return out << ' ' << std::get<Numeric>(s).text();
        case Value::Kind::date:
            return out << ' ' << std::get<Date>(s).days;
        case Value::Kind::time:
            return out << ' ' << std::get<Time>(s).microseconds;
        case Value::Kind::timestamp:
            return out << ' ' << std::get<Timestamp>(s).microseconds;
        case Value::Kind::timestamptz:
            return out << ' ' << std::get<TimestampTz>(s).microseconds;
        case Value::Kind::interval: {
            const Interval& iv = std::get<Interval>(s);
            return out << ' ' << iv.months << "m " << iv.days << "d " << iv.microseconds << "us";
        }
        case Value::Kind::bytes:
            return out << ' ' << std::get<Bytes>(s).data.size() << " bytes";
        case Value::Kind::json:
            return out << ' ' << std::get<Json>(s).text;
        case Value::Kind::array: {
            out << " {";
            for (const auto& element : std::get<Array>(s).elements) {
                out << element << ';';
            }
            return out << '}';
        }
        default:
            return out;
    }
}
}  // namespace pg_ingest

using namespace pg_ingest;
using namespace std::string_literals;

namespace {

ColumnType column(std::uint32_t oid, std::int32_t typmod = -1, std::uint32_t element = 0,
                  std::string name = "") {
    ColumnType type;
    BOOST_REQUIRE(ColumnType::from_oid(oid, typmod, element, std::move(name), type));
    return type;
}

const ColumnType k_bool = column(16);
const ColumnType k_bytea = column(17);
const ColumnType k_int8 = column(20);
const ColumnType k_int2 = column(21);
const ColumnType k_int4 = column(23);
const ColumnType k_text = column(25);
const ColumnType k_json = column(114);
const ColumnType k_float4 = column(700);
const ColumnType k_float8 = column(701);
const ColumnType k_date = column(1082);
const ColumnType k_time = column(1083);
const ColumnType k_timestamp = column(1114);
const ColumnType k_timestamptz = column(1184);
const ColumnType k_interval = column(1186);
const ColumnType k_numeric = column(1700);
const ColumnType k_uuid = column(2950);
const ColumnType k_jsonb = column(3802);
const ColumnType k_int4_array = column(1007, -1, 23, "integer[]");
const ColumnType k_text_array = column(1009, -1, 25, "text[]");

Value parse(std::string_view text, const ColumnType& type, const TextValueOptions& options = {}) {
    return parse_text_value(text, type, "column \"c\"", options);
}

// The SQLSTATE of the Error; the message must name the column and quote the value.
std::string error_of(std::string_view text, const ColumnType& type,
                     std::string_view shown_value = {}) {
    try {
        parse_text_value(text, type, "column \"c\"");
    } catch (const Error& error) {
        const std::string message = error.what();
        BOOST_TEST(message.rfind("column \"c\"", 0) == 0, message);
        const std::string quoted =
            "\"" + std::string(shown_value.empty() ? text : shown_value) + "\"";
        BOOST_TEST(message.find(quoted) != std::string::npos, message << " lacks " << quoted);
        BOOST_TEST(!error.retryable());
        return error.sqlstate();
    }
    BOOST_FAIL("accepted: \"" << std::string(text) << "\"");
    return {};
}

std::int64_t integer(const Value& value) {
    BOOST_REQUIRE(value.kind() == Value::Kind::integer);
    return std::get<std::int64_t>(value.storage());
}

double floating(const Value& value) {
    BOOST_REQUIRE(value.kind() == Value::Kind::floating);
    return std::get<double>(value.storage());
}

constexpr std::int64_t k_hour = 3600LL * 1000000;
constexpr std::int64_t k_minute = 60LL * 1000000;
constexpr std::int64_t k_second = 1000000;

Value parse_with_style(std::string_view text, IntervalStyle style) {
    TextValueOptions options;
    options.interval_style = style;
    return parse(text, k_interval, options);
}

// Puts the whole process in a locale whose decimal point is a comma (as a program that calls
// setlocale(LC_ALL, "") does in Germany) until destroyed: an installed one, else de_DE compiled
// with localedef into a temporary LOCPATH directory (machines often have only C and C.UTF-8,
// and C.UTF-8 keeps the '.'). name() is empty when neither could be had.
class CommaDecimalLocale {
  public:
    CommaDecimalLocale() : m_saved(std::setlocale(LC_ALL, nullptr)) {
        for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8",
                                 "ru_RU.UTF-8", "nl_NL.UTF-8", "es_ES.UTF-8", "it_IT.UTF-8"}) {
            if (use(name)) {
                return;
            }
        }
        compile();
    }
    ~CommaDecimalLocale() {
        std::setlocale(LC_ALL, m_saved.c_str());
        if (m_locpath_set) {
            if (m_old_locpath) {
                ::setenv("LOCPATH", m_old_locpath->c_str(), 1);
            } else {
                ::unsetenv("LOCPATH");
            }
        }
        if (!m_dir.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(m_dir, ignored);
        }
    }
    CommaDecimalLocale(const CommaDecimalLocale&) = delete;
    CommaDecimalLocale& operator=(const CommaDecimalLocale&) = delete;

    const std::string& name() const { return m_name; }

  private:
    bool use(const char* name) {
        if (std::setlocale(LC_ALL, name) != nullptr &&
            std::string(std::localeconv()->decimal_point) == ",") {
            m_name = name;
            return true;
        }
        std::setlocale(LC_ALL, m_saved.c_str());
        return false;
    }
    void compile() {
        std::string dir = (std::filesystem::temp_directory_path() / "pg_ingest_locale_XXXXXX");
        if (::mkdtemp(dir.data()) == nullptr) {
            return;
        }
        m_dir = dir;
        // ISO-8859-1 compiles in a fraction of the time UTF-8 takes; the inputs are ASCII.
        const std::string command =
            "localedef -i de_DE -f ISO-8859-1 '" + m_dir + "/de_DE.ISO-8859-1' >/dev/null 2>&1";
        if (std::system(command.c_str()) == -1) {
            return;  // warnings make localedef exit non-zero with the locale written: not checked
        }
        if (const char* old = std::getenv("LOCPATH")) {
            m_old_locpath = old;
        }
        ::setenv("LOCPATH", m_dir.c_str(), 1);
        m_locpath_set = true;
        use("de_DE.ISO-8859-1");
    }

    std::string m_saved;
    std::string m_name;
    std::string m_dir;
    bool m_locpath_set = false;
    std::optional<std::string> m_old_locpath;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(text_values)

BOOST_AUTO_TEST_CASE(integers_take_a_sign_and_surrounding_blanks) {
    BOOST_TEST(integer(parse("42", k_int4)) == 42);
    BOOST_TEST(integer(parse(" -17 ", k_int4)) == -17);
    BOOST_TEST(integer(parse("+5", k_int2)) == 5);
    BOOST_TEST(integer(parse("007", k_int8)) == 7);
}

BOOST_AUTO_TEST_CASE(integer_extremes_fit_and_one_more_is_out_of_range) {
    BOOST_TEST(integer(parse("32767", k_int2)) == 32767);
    BOOST_TEST(integer(parse("-32768", k_int2)) == -32768);
    BOOST_TEST(error_of("32768", k_int2) == "22003");
    BOOST_TEST(error_of("-32769", k_int2) == "22003");
    BOOST_TEST(integer(parse("2147483647", k_int4)) == 2147483647);
    BOOST_TEST(error_of("2147483648", k_int4) == "22003");
    BOOST_TEST(integer(parse("9223372036854775807", k_int8)) ==
               std::numeric_limits<std::int64_t>::max());
    BOOST_TEST(integer(parse("-9223372036854775808", k_int8)) ==
               std::numeric_limits<std::int64_t>::min());
    BOOST_TEST(error_of("9223372036854775808", k_int8) == "22003");
    BOOST_TEST(error_of("-99999999999999999999999", k_int8) == "22003");
}

BOOST_AUTO_TEST_CASE(malformed_integers_are_invalid_syntax) {
    for (const char* bad : {"", " ", "1.0", "12a", "+", "- 1", "1_000", "0x10", "1e3"}) {
        BOOST_TEST(error_of(bad, k_int4) == "22P02", bad);
    }
}

BOOST_AUTO_TEST_CASE(out_of_range_message_names_column_type_and_value) {
    try {
        parse_text_value("99999", k_int2, "column \"qty\"");
        BOOST_FAIL("accepted");
    } catch (const Error& error) {
        BOOST_TEST(std::string(error.what()) ==
                   "column \"qty\": value \"99999\" is out of range for type smallint");
    }
}

BOOST_AUTO_TEST_CASE(floats_accept_decimal_exponent_and_special_values) {
    BOOST_TEST(floating(parse("1.5", k_float8)) == 1.5);
    BOOST_TEST(floating(parse(" -2.5e-3 ", k_float8)) == -2.5e-3);
    BOOST_TEST(floating(parse(".5", k_float8)) == 0.5);
    BOOST_TEST(floating(parse("1.7976931348623157e308", k_float8)) ==
               std::numeric_limits<double>::max());
    BOOST_TEST(floating(parse("4.9e-324", k_float8)) > 0.0);  // denormal: accepted
    BOOST_TEST(std::isnan(floating(parse("NaN", k_float8))));
    BOOST_TEST(floating(parse("Infinity", k_float8)) == HUGE_VAL);
    BOOST_TEST(floating(parse("-inf", k_float8)) == -HUGE_VAL);
    BOOST_TEST(std::signbit(floating(parse("-0", k_float8))));
}

BOOST_AUTO_TEST_CASE(float_overflow_and_underflow_are_out_of_range) {
    BOOST_TEST(error_of("1e309", k_float8) == "22003");
    BOOST_TEST(error_of("1e-400", k_float8) == "22003");
    BOOST_TEST(error_of("3.5e38", k_float4) == "22003");
    BOOST_TEST(error_of("abc", k_float8) == "22P02");
    BOOST_TEST(error_of("1.5x", k_float4) == "22P02");
    BOOST_TEST(error_of("nan(", k_float8) == "22P02");
}

BOOST_AUTO_TEST_CASE(floats_take_every_spelling_the_servers_strtod_takes) {
    // float8in/float4in give the text to strtod/strtof: hex notation and nan(...) included.
    BOOST_TEST(std::isnan(floating(parse("nan(1)", k_float8))));
    BOOST_TEST(std::isnan(floating(parse(" -NaN ", k_float8))));
    BOOST_TEST(std::isnan(floating(parse("+nan", k_float4))));
    BOOST_TEST(floating(parse("-0x1.8p1", k_float8)) == -3.0);
    BOOST_TEST(floating(parse("\t+INF\n", k_float8)) == HUGE_VAL);
    // Out of range is found before what follows the number, as the server finds it.
    BOOST_TEST(error_of("1e999 x", k_float8) == "22003");
    for (const char* bad : {"infinit", "1e", ".", "0x", "nan(", " ", "1 2"}) {
        BOOST_TEST(error_of(bad, k_float8) == "22P02", bad);
    }
}

BOOST_AUTO_TEST_CASE(numbers_and_fractions_do_not_depend_on_the_process_locale) {
    const CommaDecimalLocale locale;
    if (locale.name().empty()) {
        BOOST_TEST_MESSAGE(
            "skipped: no locale with a decimal comma is installed and localedef could not make "
            "one (C.UTF-8 keeps the '.')");
        return;
    }
    BOOST_TEST_MESSAGE("process locale: " << locale.name());
    BOOST_TEST(floating(parse("1.5", k_float8)) == 1.5);
    BOOST_TEST(error_of("1,5", k_float8) == "22P02");
    BOOST_TEST(floating(parse("2.5e3", k_float4)) == 2500.0);
    BOOST_TEST(parse("2024-01-01 10:00:00.5", k_timestamp) ==
               Value(Timestamp::from_parts(2024, 1, 1, 10, 0, 0, 500000)));
    BOOST_TEST(parse("10:00:00.25", k_time) == Value(Time::from_hms(10, 0, 0, 250000)));
    BOOST_TEST(parse("1.5 days", k_interval) == Value(Interval{12 * k_hour, 1, 0}));
    BOOST_TEST(parse("10:00:00.25", k_interval) == Value(Interval{10 * k_hour + 250000, 0, 0}));
    BOOST_TEST(parse("PT1.5S", k_interval) == Value(Interval{1500000, 0, 0}));
}

BOOST_AUTO_TEST_CASE(real_is_rounded_once_to_single_precision) {
    BOOST_TEST(floating(parse("0.1", k_float4)) == static_cast<double>(0.1f));
    BOOST_TEST(floating(parse("3.4028234e38", k_float4)) ==
               static_cast<double>(std::numeric_limits<float>::max()));
}

BOOST_AUTO_TEST_CASE(numeric_keeps_exact_digits_and_checks_the_typmod) {
    BOOST_TEST(std::get<Numeric>(parse("12.50", k_numeric).storage()).text() == "12.50");
    // A scale past numeric's 16383 is refused before the column's scale would round it away.
    const ColumnType numeric_5_2 = column(1700, ((5 << 16) | 2) + 4, 0, "numeric(5,2)");
    BOOST_TEST(error_of("1e-16384", numeric_5_2) == "22003");
    BOOST_TEST(error_of("0.5e-16383", k_numeric) == "22003");
    BOOST_CHECK_NO_THROW(parse("1e-16383", numeric_5_2));  // the encoder rounds it to 0.00
    // Exponents past 10^6: out of range as numeric_in says (22003), not a syntax error, except
    // that zero times a power of ten below INT_MAX/2 is zero.
    for (const char* huge :
         {"1e2000000", "1e-2000000", "0e-2000000", "0e1073741823", "5e99999999999999999999"}) {
        BOOST_TEST(error_of(huge, k_numeric) == "22003", huge);
    }
    BOOST_TEST(std::get<Numeric>(parse(" -0.00e2000000", k_numeric).storage()).text() == "0");
    BOOST_TEST(error_of("1e2000000x", k_numeric) == "22P02");
    BOOST_TEST(std::get<Numeric>(parse(" -0.000 ", k_numeric).storage()).text() == "0.000");
    BOOST_TEST(std::get<Numeric>(parse("NaN", k_numeric).storage()).text() == "NaN");
    BOOST_TEST(std::get<Numeric>(parse("-Infinity", k_numeric).storage()).text() == "-Infinity");
    const ColumnType numeric_4_2 = column(1700, ((4 << 16) | 2) + 4, 0, "numeric(4,2)");
    BOOST_TEST(parse("12.345", numeric_4_2).kind() == Value::Kind::numeric);
    BOOST_TEST(error_of("123.45", numeric_4_2) == "22003");
    BOOST_TEST(error_of("1.2.3", k_numeric) == "22P02");
    BOOST_TEST(error_of("", k_numeric) == "22P02");
}

BOOST_AUTO_TEST_CASE(booleans_accept_every_server_spelling) {
    for (const char* yes : {"t", "true", "TRUE", "tru", "y", "yes", "on", "ON", "1", " true "}) {
        BOOST_TEST(parse(yes, k_bool) == Value(true), yes);
    }
    for (const char* no : {"f", "false", "fal", "n", "no", "off", "of", "0", "False"}) {
        BOOST_TEST(parse(no, k_bool) == Value(false), no);
    }
    for (const char* bad : {"o", "2", "truex", "yess", "", "10", "-1"}) {
        BOOST_TEST(error_of(bad, k_bool) == "22P02", bad);
    }
}

BOOST_AUTO_TEST_CASE(text_is_kept_byte_for_byte_including_unicode_and_blanks) {
    BOOST_TEST(parse("  ünïcødé 🐘 \\N ", k_text) == Value("  ünïcødé 🐘 \\N "));
    BOOST_TEST(parse("", k_text) == Value(""));
    BOOST_TEST(parse("line\nbreak, \"quoted\"", k_text) == Value("line\nbreak, \"quoted\""));
}

BOOST_AUTO_TEST_CASE(nul_bytes_are_rejected_for_every_type) {
    BOOST_TEST(error_of("ab\0c"s, k_text, "ab\\0c") == "22021");
    BOOST_TEST(error_of("1\0"s, k_int4, "1\\0") == "22021");
    BOOST_TEST(error_of("{\"a\":\"\0\"}"s, k_json, "{\"a\":\"\\0\"}") == "22021");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_and_too_long_strings_are_refused) {
    BOOST_TEST(error_of("ab\xff", k_text) == "22021");
    const ColumnType varchar3 = column(1043, 3 + 4, 0, "character varying(3)");
    BOOST_TEST(parse("ab€", varchar3) == Value("ab€"));  // three characters, five bytes
    BOOST_TEST(error_of("ab€d", varchar3) == "22001");
    BOOST_TEST(parse("abc   ", varchar3) == Value("abc   "));  // blanks beyond n are dropped later
    const ColumnType char2 = column(1042, 2 + 4, 0, "character(2)");
    BOOST_TEST(error_of("xyz", char2) == "22001");
}

BOOST_AUTO_TEST_CASE(dates_in_iso_form_with_eras_and_special_values) {
    BOOST_TEST(parse("2024-02-29", k_date) == Value(Date::from_ymd(2024, 2, 29)));
    BOOST_TEST(parse(" 2000-1-2 ", k_date) == Value(Date::from_ymd(2000, 1, 2)));
    BOOST_TEST(parse("0044-03-15 BC", k_date) == Value(Date::from_ymd(-43, 3, 15)));
    BOOST_TEST(parse("2024-05-01 13:14:15", k_date) == Value(Date::from_ymd(2024, 5, 1)));
    BOOST_TEST(parse("infinity", k_date) == Value(Date::infinity()));
    BOOST_TEST(parse("-Infinity", k_date) == Value(Date::minus_infinity()));
    BOOST_TEST(parse("epoch", k_date) == Value(Date::from_ymd(1970, 1, 1)));
}

BOOST_AUTO_TEST_CASE(date_extremes_and_impossible_days) {
    BOOST_TEST(parse("4714-11-24 BC", k_date) == Value(Date::from_ymd(-4713, 11, 24)));
    BOOST_TEST(parse("5874897-12-31", k_date) == Value(Date::from_ymd(5874897, 12, 31)));
    BOOST_TEST(error_of("4714-11-23 BC", k_date) == "22008");
    BOOST_TEST(error_of("5874898-01-01", k_date) == "22008");
    BOOST_TEST(error_of("2023-02-29", k_date) == "22008");
    BOOST_TEST(error_of("2024-13-01", k_date) == "22008");
    BOOST_TEST(error_of("0000-01-01", k_date) == "22008");
    BOOST_TEST(error_of("2024/01/01", k_date) == "22007");
    BOOST_TEST(error_of("24-01-01", k_date) == "22007");
    BOOST_TEST(error_of("yesterday", k_date) == "22007");
}

BOOST_AUTO_TEST_CASE(times_round_fractions_and_allow_midnight_at_the_end) {
    BOOST_TEST(parse("00:00", k_time) == Value(Time{0}));
    BOOST_TEST(parse("23:59:59.999999", k_time) == Value(Time::from_hms(23, 59, 59, 999999)));
    BOOST_TEST(parse("24:00:00", k_time) == Value(Time::from_hms(24, 0, 0)));
    BOOST_TEST(parse("12:00:00.1234567", k_time) == Value(Time::from_hms(12, 0, 0, 123457)));
    BOOST_TEST(parse("9:05", k_time) == Value(Time::from_hms(9, 5, 0)));
    BOOST_TEST(parse("10:00:00+05", k_time) == Value(Time::from_hms(10, 0, 0)));  // ignored
    // AM/PM as the server reads it: on the hour as written, 12 AM is midnight, 12 PM noon.
    BOOST_TEST(parse("04:05 PM", k_time) == Value(Time::from_hms(16, 5, 0)));
    BOOST_TEST(parse("04:05 am", k_time) == Value(Time::from_hms(4, 5, 0)));
    BOOST_TEST(parse("12:30 AM", k_time) == Value(Time::from_hms(0, 30, 0)));
    BOOST_TEST(parse("12:30 PM", k_time) == Value(Time::from_hms(12, 30, 0)));
    BOOST_TEST(parse("11:59:59.9999995 PM", k_time) == Value(Time::from_hms(24, 0, 0)));
    BOOST_TEST(parse("2024-01-01 04:05:06 pm", k_timestamp) ==
               Value(Timestamp::from_parts(2024, 1, 1, 16, 5, 6, 0)));
    BOOST_TEST(error_of("13:00 PM", k_time) == "22008");
    // Run into a sign, a word is a POSIX zone to the server (PM dropped, offset west): refused.
    BOOST_TEST(error_of("04:05 PM-08", k_time) == "22007");
    BOOST_TEST(error_of("2024-01-01 04:05PM+08:00", k_timestamp) == "22007");
    BOOST_TEST(error_of("2024-01-01 12:00 UTC+3", k_timestamp) == "22007");
    BOOST_TEST(parse("04:05 PM -08", k_time) == Value(Time::from_hms(16, 5, 0)));
    BOOST_TEST(error_of("04:05 PM PM", k_time) == "22007");
    BOOST_TEST(error_of("24:00:01", k_time) == "22008");
    BOOST_TEST(error_of("25:00", k_time) == "22008");
    BOOST_TEST(error_of("12:60", k_time) == "22008");
    BOOST_TEST(error_of("12", k_time) == "22007");
    BOOST_TEST(error_of("noon", k_time) == "22007");
}

BOOST_AUTO_TEST_CASE(timestamps_with_space_or_t_and_fractions) {
    BOOST_TEST(parse("2024-03-10 12:34:56.789", k_timestamp) ==
               Value(Timestamp::from_parts(2024, 3, 10, 12, 34, 56, 789000)));
    BOOST_TEST(parse("2024-03-10T12:34", k_timestamp) ==
               Value(Timestamp::from_parts(2024, 3, 10, 12, 34)));
    BOOST_TEST(parse("2024-03-10", k_timestamp) == Value(Timestamp::from_parts(2024, 3, 10)));
    // A leap second and a fraction that rounds up both carry into the next day.
    BOOST_TEST(parse("2024-12-31 23:59:60", k_timestamp) ==
               Value(Timestamp::from_parts(2025, 1, 1)));
    BOOST_TEST(parse("2024-12-31 23:59:59.9999996", k_timestamp) ==
               Value(Timestamp::from_parts(2025, 1, 1)));
    // timestamp without time zone ignores an offset, as the server does.
    BOOST_TEST(parse("2024-03-10 12:00:00+05:30", k_timestamp) ==
               Value(Timestamp::from_parts(2024, 3, 10, 12)));
    BOOST_TEST(parse("infinity", k_timestamp) == Value(Timestamp::infinity()));
    BOOST_TEST(parse("-infinity", k_timestamp) == Value(Timestamp::minus_infinity()));
    BOOST_TEST(error_of("2024-03-10 12:34:56 extra", k_timestamp) == "22007");
    BOOST_TEST(error_of("2024-03-1012:00", k_timestamp) == "22007");
}

BOOST_AUTO_TEST_CASE(timestamp_extremes) {
    BOOST_TEST(parse("294276-12-31 23:59:59.999999", k_timestamp) ==
               Value(Timestamp::from_parts(294276, 12, 31, 23, 59, 59, 999999)));
    BOOST_TEST(parse("4714-11-24 00:00:00 BC", k_timestamp) ==
               Value(Timestamp::from_parts(-4713, 11, 24)));
    BOOST_TEST(error_of("294277-01-01 00:00:00", k_timestamp) == "22008");
    BOOST_TEST(error_of("4714-11-23 23:59:59 BC", k_timestamp) == "22008");
    BOOST_TEST(error_of("5874897-01-01 00:00:00", k_timestamp) == "22008");
}

BOOST_AUTO_TEST_CASE(timestamptz_offsets_in_every_server_form) {
    const Value utc_noon = Value(TimestampTz::from_parts(2024, 3, 10, 12, 0, 0, 0, 0));
    BOOST_TEST(parse("2024-03-10 17:30:00+05:30", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 17:30:00+0530", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 04:00:00-08", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10T12:00:00Z", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 12:00:00 UTC", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 12:00:00+00", k_timestamptz) == utc_noon);
    // Local mean time offsets have seconds (the server prints them for old dates).
    BOOST_TEST(parse("1890-01-01 00:53:28+00:53:28", k_timestamptz) ==
               Value(TimestampTz::from_parts(1890, 1, 1, 0, 0, 0, 0, 0)));
    BOOST_TEST(parse("0044-03-15 12:00:00+00 BC", k_timestamptz) ==
               Value(TimestampTz::from_parts(-43, 3, 15, 12, 0, 0, 0, 0)));
    BOOST_TEST(parse("infinity", k_timestamptz) == Value(TimestampTz::infinity()));
    BOOST_TEST(parse("-infinity", k_timestamptz) == Value(TimestampTz::minus_infinity()));
    BOOST_TEST(parse("epoch", k_timestamptz) == Value(TimestampTz::from_unix_micros(0)));
}

BOOST_AUTO_TEST_CASE(utc_offsets_are_read_as_the_servers_decode_timezone_reads_them) {
    const Value utc_noon = Value(TimestampTz::from_parts(2024, 3, 10, 12, 0, 0, 0, 0));
    // +HHMMSS is not a form the server has: 53000 hours, out of range.
    BOOST_TEST(error_of("2024-03-10 17:30:00+053000", k_timestamptz) == "22009");
    BOOST_TEST(error_of("2024-03-10 17:30:00+05300", k_timestamptz) == "22009");
    BOOST_TEST(error_of("2024-03-10 17:30:00+1600", k_timestamptz) == "22009");
    BOOST_TEST(error_of("2024-03-10 17:30:00+05:30:60", k_timestamptz) == "22009");
    BOOST_TEST(error_of("10:00+053000", k_time) == "22009");
    BOOST_TEST(error_of("2024-03-10 +053000", k_date) == "22009");
    BOOST_TEST(error_of("2024-03-10 17:30:00+05.5", k_timestamptz) == "22007");
    BOOST_TEST(error_of("2024-03-10 17:30:00+05-30", k_timestamptz) == "22007");
    // Three or more digits alone are H[H]MM; after a ':' any number of digits.
    BOOST_TEST(parse("2024-03-10 17:30:00+530", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 12:15:00+015", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 17:03:00+5:3", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 17:00:00+ 05", k_timestamptz) == utc_noon);
    BOOST_TEST(parse("2024-03-10 11:59:30-0:0:30", k_timestamptz) == utc_noon);
    // A '-' right after the date is part of the date field for the server, not an offset.
    BOOST_TEST(error_of("2024-03-10-05", k_timestamptz) == "22007");
    BOOST_TEST(parse("2024-03-10 -05", k_timestamptz) ==
               Value(TimestampTz::from_parts(2024, 3, 10, 5, 0, 0, 0, 0)));
}

BOOST_AUTO_TEST_CASE(timestamptz_without_offset_uses_the_session_zone_hook) {
    BOOST_TEST(parse("2024-03-10 12:00:00", k_timestamptz) ==
               Value(TimestampTz::from_parts(2024, 3, 10, 12, 0, 0, 0, 0)));  // no hook: UTC
    TextValueOptions options;
    options.local_to_utc = [](std::int64_t local) { return local - k_hour; };  // UTC+1
    BOOST_TEST(parse("2024-03-10 13:00:00", k_timestamptz, options) ==
               Value(TimestampTz::from_parts(2024, 3, 10, 12, 0, 0, 0, 0)));
    // An explicit offset wins over the hook.
    BOOST_TEST(parse("2024-03-10 12:00:00Z", k_timestamptz, options) ==
               Value(TimestampTz::from_parts(2024, 3, 10, 12, 0, 0, 0, 0)));
}

BOOST_AUTO_TEST_CASE(timestamptz_bad_zones) {
    BOOST_TEST(error_of("2024-03-10 12:00:00+16:00", k_timestamptz) == "22009");
    BOOST_TEST(error_of("2024-03-10 12:00:00 Europe/Berlin", k_timestamptz) == "22007");
    BOOST_TEST(error_of("2024-03-10 12:00:00+05:30.5", k_timestamptz) == "22007");
    BOOST_TEST(error_of("2024-03-10 12:00:00+05 +06", k_timestamptz) == "22007");
}

BOOST_AUTO_TEST_CASE(intervals_in_the_postgres_output_style) {
    BOOST_TEST(parse("1 year 2 mons 3 days 04:05:06.5", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_minute + 6500000, 3, 14}));
    BOOST_TEST(parse("-1 days +02:00:00", k_interval) == Value(Interval{2 * k_hour, -1, 0}));
    BOOST_TEST(parse("-00:00:01", k_interval) == Value(Interval{-k_second, 0, 0}));
    BOOST_TEST(parse("00:00:00", k_interval) == Value(Interval{0, 0, 0}));
    BOOST_TEST(parse("1000:00:00", k_interval) == Value(Interval{1000 * k_hour, 0, 0}));
    BOOST_TEST(parse("-178000000 years", k_interval) == Value(Interval{0, 0, -2136000000}));
}

BOOST_AUTO_TEST_CASE(intervals_in_verbose_iso_and_sql_standard_styles) {
    const Value expected = Value(Interval{4 * k_hour + 5 * k_minute + 6500000, 3, 14});
    BOOST_TEST(parse("@ 1 year 2 mons 3 days 4 hours 5 mins 6.5 secs", k_interval) == expected);
    BOOST_TEST(parse("P1Y2M3DT4H5M6.5S", k_interval) == expected);
    BOOST_TEST(parse("1-2 3 4:05:06.5", k_interval) == expected);
    BOOST_TEST(parse("@ 1 hour 2 mins ago", k_interval) ==
               Value(Interval{-(k_hour + 2 * k_minute), 0, 0}));
    BOOST_TEST(parse("PT-1.5S", k_interval) == Value(Interval{-1500000, 0, 0}));
    BOOST_TEST(parse("P1W", k_interval) == Value(Interval{0, 7, 0}));
}

BOOST_AUTO_TEST_CASE(interval_fractions_spill_into_smaller_units_like_the_server) {
    BOOST_TEST(parse("1.5 years", k_interval) == Value(Interval{0, 0, 18}));
    BOOST_TEST(parse("1.5 months", k_interval) == Value(Interval{0, 15, 1}));
    BOOST_TEST(parse("1.5 days", k_interval) == Value(Interval{12 * k_hour, 1, 0}));
    BOOST_TEST(parse("0.5 weeks", k_interval) == Value(Interval{12 * k_hour, 3, 0}));
    BOOST_TEST(parse("2h 30m", k_interval) == Value(Interval{2 * k_hour + 30 * k_minute, 0, 0}));
    BOOST_TEST(parse("5", k_interval) == Value(Interval{5 * k_second, 0, 0}));
    BOOST_TEST(parse("1 ms 2 us", k_interval) == Value(Interval{1002, 0, 0}));
    BOOST_TEST(parse("1 century", k_interval) == Value(Interval{0, 0, 1200}));
}

BOOST_AUTO_TEST_CASE(two_clock_fields_with_a_fraction_are_minutes_and_seconds_like_the_server) {
    // SELECT '1:30.5'::interval is 00:01:30.5; without a fraction '1:30' is 01:30:00.
    BOOST_TEST(parse("1:30.5", k_interval) == Value(Interval{k_minute + 30500000, 0, 0}));
    BOOST_TEST(parse("-1:30.5", k_interval) == Value(Interval{-(k_minute + 30500000), 0, 0}));
    BOOST_TEST(parse("1:30", k_interval) == Value(Interval{k_hour + 30 * k_minute, 0, 0}));
    BOOST_TEST(error_of("90:30.5", k_interval) == "22015");
}

BOOST_AUTO_TEST_CASE(bad_intervals) {
    BOOST_TEST(error_of("1 fortnight", k_interval) == "22007");
    BOOST_TEST(error_of("abc", k_interval) == "22007");
    BOOST_TEST(error_of("", k_interval) == "22007");
    BOOST_TEST(error_of("1 2 3", k_interval) == "22007");
    BOOST_TEST(error_of("00:60:00", k_interval) == "22015");
    // Days count in an int32 as they are read (22015); years and months together only at the
    // end (22008), as in the server.
    BOOST_TEST(error_of("2147483648 days", k_interval) == "22015");
    BOOST_TEST(error_of("2147483647 days 1 day", k_interval) == "22015");
    BOOST_TEST(error_of("178956971 years", k_interval) == "22008");
    BOOST_TEST(error_of("P1X", k_interval) == "22007");
}

BOOST_AUTO_TEST_CASE(an_interval_with_a_repeated_unit_is_refused) {
    for (const char* bad :
         {"1 mon 1 month", "1 day 2 days", "1 us 1 usec", "1 hour 1 minute 1 hour", "1 hour 10:00",
          "10:00 1 hour", "1 day 10:00 11:00", "1-2 3-4", "1 mon 1-2", "30 secs 10:00",
          "1.5 sec 500 ms", "1 2", "1 2 days"}) {
        BOOST_TEST(error_of(bad, k_interval) == "22007", bad);
    }
    // Different fields, as the server counts them: seconds without a fraction leave the
    // milliseconds free, weeks are not days, a year-month field fills only the months.
    BOOST_TEST(parse("1 sec 500 ms", k_interval) == Value(Interval{1500000, 0, 0}));
    BOOST_TEST(parse("1 week 1 day", k_interval) == Value(Interval{0, 8, 0}));
    BOOST_TEST(parse("1 decade 1 year", k_interval) == Value(Interval{0, 0, 132}));
    BOOST_TEST(parse("1 year 1-2", k_interval) == Value(Interval{0, 0, 26}));
}

BOOST_AUTO_TEST_CASE(a_bare_number_takes_its_unit_from_the_field_to_its_right) {
    // DecodeInterval reads right to left: a number without a unit is in the unit of the field
    // after it, days before hours or a clock field, seconds at the end.
    BOOST_TEST(parse("1 2 hours", k_interval) == Value(Interval{2 * k_hour, 1, 0}));
    BOOST_TEST(parse("3 4 hours 5", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_second, 3, 0}));
    BOOST_TEST(parse("1 hour 2", k_interval) == Value(Interval{k_hour + 2 * k_second, 0, 0}));
    BOOST_TEST(parse("1-2 5", k_interval) == Value(Interval{5 * k_second, 0, 14}));
    BOOST_TEST(error_of("5 ago", k_interval) == "22007");
    // A unit with no number to its left is passed over, as the server passes it over
    // (SELECT 'day 1'::interval is 00:00:01).
    BOOST_TEST(parse("day 1", k_interval) == Value(Interval{k_second, 0, 0}));
    BOOST_TEST(parse("1 day hour", k_interval) == Value(Interval{0, 1, 0}));
}

BOOST_AUTO_TEST_CASE(interval_fractions_are_rounded_as_the_server_rounds_them) {
    // Each value below was read with SELECT '...'::interval on PostgreSQL 15.
    // A unit's fraction: the whole microseconds truncated, the rest rounded half to even.
    BOOST_TEST(parse("5.3563235", k_interval) == Value(Interval{5356323, 0, 0}));
    BOOST_TEST(parse("89.9756495", k_interval) == Value(Interval{89975649, 0, 0}));
    // ISO 8601 numbers are doubles: 1.2 months is 1 month 5 days 24:00:00, not 1 month 6 days.
    BOOST_TEST(parse("P1.2M", k_interval) == Value(Interval{24 * k_hour, 5, 1}));
    BOOST_TEST(parse("P1.5Y", k_interval) == Value(Interval{0, 0, 18}));
    BOOST_TEST(parse("P1e1D", k_interval) == Value(Interval{0, 10, 0}));
    // The alternative formats, and the basic time format's fraction taken as microseconds.
    BOOST_TEST(parse("P0001-02-03T04:05:06", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_minute + 6 * k_second, 3, 14}));
    BOOST_TEST(parse("P00010203.5", k_interval) == Value(Interval{12 * k_hour, 3, 14}));
    BOOST_TEST(parse("PT040506.5", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_minute + 6 * k_second, 0, 0}));
    // A clock's seconds may be 60; its fraction is rounded half to even directly.
    BOOST_TEST(parse("15:09:60.65", k_interval) ==
               Value(Interval{15 * k_hour + 10 * k_minute + 650000, 0, 0}));
    // Fields as ParseDateTime splits them.
    BOOST_TEST(parse("1h30m", k_interval) == Value(Interval{k_hour + 30 * k_minute, 0, 0}));
    BOOST_TEST(parse("1 day, 2 hours", k_interval) == Value(Interval{2 * k_hour, 1, 0}));
    BOOST_TEST(parse("+ 5 days", k_interval) == Value(Interval{0, 5, 0}));
    BOOST_TEST(parse("ago 5 days", k_interval) == Value(Interval{0, -5, 0}));
    BOOST_TEST(parse("2 usecond", k_interval) == Value(Interval{2, 0, 0}));
    BOOST_TEST(parse("3 microsecondzzz", k_interval) == Value(Interval{3, 0, 0}));
    BOOST_TEST(error_of("1day2h", k_interval) == "22007");
    // A clock's fraction may be a bare '.' (ParseFraction reads it as 0).
    BOOST_TEST(parse("1:2:3.", k_interval) ==
               Value(Interval{k_hour + 2 * k_minute + 3 * k_second, 0, 0}));
    BOOST_TEST(parse("12:30.", k_interval) == Value(Interval{12 * k_minute + 30 * k_second, 0, 0}));
    // 25 fields, then punctuation: the server counts fields before it skips punctuation.
    const std::string fields =
        "1 millennium 1 century 1 decade 1 year 1 month 1 week 1 day 1 hour 1 minute 1 second "
        "1 millisecond 1 microsecond ago";
    BOOST_TEST(parse(fields, k_interval) ==
               Value(Interval{-(k_hour + k_minute + k_second + 1001), -8, -(1111 * 12 + 1)}));
    BOOST_TEST(error_of(fields + ",", k_interval, fields + ",") == "22007");
    BOOST_TEST(error_of("+1:60", k_interval) == "22007");
    BOOST_TEST(error_of("1:60", k_interval) == "22015");
}

BOOST_AUTO_TEST_CASE(a_clock_field_replaces_the_time_that_fields_to_its_right_spilled) {
    // The server assigns the clock to the time part: '4:05 1.5 days' is 1 day 04:05:00, while
    // '1.5 days 4:05' (clock read first) is 1 day 16:05:00.
    BOOST_TEST(parse("4:05 1.5 days", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_minute, 1, 0}));
    BOOST_TEST(parse("1.5 days 4:05", k_interval) ==
               Value(Interval{16 * k_hour + 5 * k_minute, 1, 0}));
    BOOST_TEST(parse("-4:05 1.5 mons", k_interval) ==
               Value(Interval{-(4 * k_hour + 5 * k_minute), 15, 1}));
}

BOOST_AUTO_TEST_CASE(a_leading_minus_applies_to_every_field_only_under_sql_standard) {
    // Default (postgres) IntervalStyle: each field has its own sign.
    BOOST_TEST(parse("-1 4:05:06", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_minute + 6 * k_second, -1, 0}));
    BOOST_TEST(parse("-1-2 3 4:05:06", k_interval) ==
               Value(Interval{4 * k_hour + 5 * k_minute + 6 * k_second, 3, -14}));
    // sql_standard: "-1 4:05:06" is how the server prints -1 day -04:05:06.
    BOOST_TEST(parse_with_style("-1 4:05:06", IntervalStyle::sql_standard) ==
               Value(Interval{-(4 * k_hour + 5 * k_minute + 6 * k_second), -1, 0}));
    BOOST_TEST(parse_with_style("-1-2 3 4:05:06", IntervalStyle::sql_standard) ==
               Value(Interval{-(4 * k_hour + 5 * k_minute + 6 * k_second), -3, -14}));
    BOOST_TEST(parse_with_style("-0-0 3", IntervalStyle::sql_standard) ==
               Value(Interval{-3 * k_second, 0, 0}));
    BOOST_TEST(parse_with_style("-1 day 2 hours", IntervalStyle::sql_standard) ==
               Value(Interval{-2 * k_hour, -1, 0}));
    // Another signed field: every field keeps its own sign (mixed output is fully signed).
    BOOST_TEST(parse_with_style("-1-2 +3 -4:05:06", IntervalStyle::sql_standard) ==
               Value(Interval{-(4 * k_hour + 5 * k_minute + 6 * k_second), 3, -14}));
    BOOST_TEST(parse_with_style("1-2 -3 4:05:06", IntervalStyle::sql_standard) ==
               Value(Interval{4 * k_hour + 5 * k_minute + 6 * k_second, -3, 14}));
    // The other styles read as postgres does.
    BOOST_TEST(parse_with_style("-1 4:05:06", IntervalStyle::iso_8601) ==
               parse("-1 4:05:06", k_interval));
}

BOOST_AUTO_TEST_CASE(iso_8601_intervals_are_taken_only_in_the_servers_exact_form) {
    BOOST_TEST(parse("PT", k_interval) == Value(Interval{0, 0, 0}));
    BOOST_TEST(parse("P1DT", k_interval) == Value(Interval{0, 1, 0}));
    // Upper-case P, T and designators, no blanks around, no '+': otherwise not ISO 8601.
    for (const char* bad : {"P", "p1y", "P1y", "PT1h", "pT1H", " P1Y", "P1Y ", "P+1Y"}) {
        BOOST_TEST(error_of(bad, k_interval) == "22007", bad);
    }
}

BOOST_AUTO_TEST_CASE(an_interval_columns_fields_decide_what_a_bare_number_is) {
    // typmods as the server makes them: INTERVAL_RANGE in the high 16 bits, no precision.
    const ColumnType year = column(1186, (0x0004 << 16) | 0xFFFF, 0, "interval year");
    const ColumnType day_to_hour = column(1186, (0x0408 << 16) | 0xFFFF, 0, "interval day to hour");
    const ColumnType minute_to_second =
        column(1186, (0x1800 << 16) | 0xFFFF, 0, "interval minute to second");
    const ColumnType precision_2 = column(1186, (0x7FFF << 16) | 2, 0, "interval(2)");
    BOOST_TEST(parse("5", year) == Value(Interval{0, 0, 60}));
    BOOST_TEST(parse("1 2", day_to_hour) == Value(Interval{2 * k_hour, 1, 0}));
    BOOST_TEST(parse("1:30", minute_to_second) == Value(Interval{90 * k_second, 0, 0}));
    BOOST_TEST(parse("1:30", day_to_hour) == Value(Interval{k_hour + 30 * k_minute, 0, 0}));
    BOOST_TEST(parse("5", precision_2) == Value(Interval{5 * k_second, 0, 0}));
}

BOOST_AUTO_TEST_CASE(uuids_in_canonical_and_loose_forms) {
    const Uuid expected = Uuid::parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    BOOST_TEST(parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", k_uuid) == Value(expected));
    BOOST_TEST(parse("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}", k_uuid) == Value(expected));
    BOOST_TEST(parse("a0eebc999c0b4ef8bb6d6bb9bd380a11", k_uuid) == Value(expected));
    BOOST_TEST(error_of("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", k_uuid) == "22P02");
    BOOST_TEST(error_of("not-a-uuid", k_uuid) == "22P02");
}

BOOST_AUTO_TEST_CASE(bytea_hex_and_escape_formats) {
    BOOST_TEST(parse("\\x0001ff", k_bytea) == Value(Bytes{"\x00\x01\xff"s}));
    BOOST_TEST(parse("\\x00 01\nFF", k_bytea) == Value(Bytes{"\x00\x01\xff"s}));
    BOOST_TEST(parse("\\x", k_bytea) == Value(Bytes{""}));
    BOOST_TEST(parse("a\\\\b\\000c\\377", k_bytea) == Value(Bytes{"a\\b\0c\xff"s}));
    BOOST_TEST(parse("plain", k_bytea) == Value(Bytes{"plain"}));
    BOOST_TEST(error_of("\\x0", k_bytea) == "22023");
    BOOST_TEST(error_of("\\xzz", k_bytea) == "22023");
    BOOST_TEST(error_of("\\9", k_bytea) == "22P02");
    BOOST_TEST(error_of("end\\", k_bytea) == "22P02");
}

BOOST_AUTO_TEST_CASE(json_is_validated_and_kept_as_written) {
    const std::string doc = R"({"a": [1, -2.5e3, true, null, "\u00e9\ud83d\udc18"], "b": {}})";
    BOOST_TEST(parse(doc, k_json) == Value(Json{doc}));
    BOOST_TEST(parse(doc, k_jsonb) == Value(Json{doc}));
    BOOST_TEST(parse(" \"ünï\" ", k_json) == Value(Json{" \"ünï\" "}));
    BOOST_TEST(parse(R"("\u0000")", k_json) == Value(Json{R"("\u0000")"}));
    BOOST_TEST(error_of(R"("\u0000")", k_jsonb) == "22P05");
    for (const char* bad : {"{\"a\":}", "[1,]", "01", "1 2", "{'a':1}", "\"\t\"", "tru",
                            "\"\\ud83\"", "\"\\x\"", "", "[", "nul"}) {
        BOOST_TEST(error_of(bad, k_json) == "22P02", bad);
    }
}

BOOST_AUTO_TEST_CASE(json_keeps_unpaired_surrogate_escapes_that_jsonb_refuses) {
    // json_in checks only that \u has four hex digits; jsonb decodes, so it needs pairs.
    for (const char* doc :
         {R"("\ud83d")", R"("\udc18")", R"("\ud83dx")", R"({"\ud83d":1})", R"("\udc00\ud800")"}) {
        BOOST_TEST(parse(doc, k_json) == Value(Json{doc}), doc);
        BOOST_TEST(error_of(doc, k_jsonb) == "22P02", doc);
    }
    BOOST_TEST(parse(R"("\ud83d\ude00")", k_jsonb) == Value(Json{R"("\ud83d\ude00")"}));
}

BOOST_AUTO_TEST_CASE(arrays_with_quoting_escapes_and_nulls) {
    BOOST_TEST(parse("{1,2,NULL,-3}", k_int4_array) ==
               Value(Array{{Value(1), Value(2), Value::null(), Value(-3)}}));
    BOOST_TEST(parse(R"({"a b","x\"y",NULL,"NULL",  plain  ,"",a\,b})", k_text_array) ==
               Value(Array{{Value("a b"), Value("x\"y"), Value::null(), Value("NULL"),
                            Value("plain"), Value(""), Value("a,b")}}));
    BOOST_TEST(parse("{}", k_int4_array) == Value(Array{}));
    BOOST_TEST(parse(" { 1 , 2 } ", k_int4_array) == Value(Array{{Value(1), Value(2)}}));
    BOOST_TEST(parse("[1:2]={1,2}", k_int4_array) == Value(Array{{Value(1), Value(2)}}));
    BOOST_TEST(parse("{\"ü\",\"🐘\"}", k_text_array) == Value(Array{{Value("ü"), Value("🐘")}}));
}

BOOST_AUTO_TEST_CASE(an_array_decoration_must_match_the_element_count) {
    for (const char* bad :
         {"[1:5]={1,2}", "[1:2]={1,2,3}", "[1:x]={1,2}", "[1:]={1,2}", "[:2]={1,2}", "[ 1:2]={1,2}",
          "[1:2]{1,2}", "[1:2]={{1,2}}", "[1:1]={}", "[1:2]=", "[1:2"}) {
        BOOST_TEST(error_of(bad, k_int4_array) == "22P02", bad);
    }
    BOOST_TEST(error_of("[1:0]={}", k_int4_array) == "2202E");
    BOOST_TEST(parse("[2]={1,2}", k_int4_array) == Value(Array{{Value(1), Value(2)}}));
    BOOST_TEST(parse(" [1:2] = {1,2}", k_int4_array) == Value(Array{{Value(1), Value(2)}}));
    BOOST_TEST(parse("[+1:3-]={1,2,3}", k_int4_array) ==  // atoi: "3-" is 3
               Value(Array{{Value(1), Value(2), Value(3)}}));
    // The decoration is checked against the contents before any element is read.
    BOOST_TEST(error_of("[1:3]={1,99999999999}", k_int4_array) == "22P02");
    BOOST_TEST(error_of("[0:1]={1,2,3}", k_int4_array) == "22P02");
}

BOOST_AUTO_TEST_CASE(bad_arrays_name_the_problem_and_the_element) {
    BOOST_TEST(error_of("{{1,2},{3,4}}", k_int4_array) == "0A000");
    BOOST_TEST(error_of("[0:1]={1,2}", k_int4_array) == "0A000");
    BOOST_TEST(error_of("{1,2", k_int4_array) == "22P02");
    BOOST_TEST(error_of("{1,,2}", k_int4_array) == "22P02");
    BOOST_TEST(error_of("1,2", k_int4_array) == "22P02");
    BOOST_TEST(error_of("{1} x", k_int4_array) == "22P02");
    try {
        parse_text_value("{1,x}", k_int4_array, "column \"ids\"");
        BOOST_FAIL("accepted");
    } catch (const Error& error) {
        BOOST_TEST(error.sqlstate() == "22P02");
        BOOST_TEST(std::string(error.what()) ==
                   "column \"ids\", element 2: invalid input syntax for type integer: \"x\"");
    }
    const ColumnType varchar2_array = column(1015, 2 + 4, 1043, "character varying(2)[]");
    BOOST_TEST(error_of("{ab,abc}", varchar2_array, "abc") == "22001");
}

BOOST_AUTO_TEST_SUITE_END()
