// Text-format field -> typed Value, following the server's input functions (int4in, float8in,
// boolin, date_in, timestamp_in, interval_in, byteain, array_in, json_in) for the inputs its own
// output styles produce, so that what COPY accepts, the typed writer accepts the same way.
//
// This module holds the entry point, its dispatch by column type and the scalar types; dates and
// times, intervals, bytea, json and arrays have a module each (text_value_*.cpp), and what they
// share is in text_value_internal.hpp.
#include <pg_ingest/text_value.hpp>

#include <cerrno>
#include <climits>
#include <cmath>
#include <optional>
#include <cstdlib>
#include <string>

#include <locale.h>

#include <pg_ingest/error.hpp>

#include "text_value_internal.hpp"

namespace pg_ingest {

namespace detail::text_input {

std::string shown(std::string_view text) {
    constexpr std::size_t k_max = 200;
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < k_max; ++i) {
        if (text[i] == '\0') {
            out += "\\0";
        } else {
            out += text[i];
        }
    }
    if (text.size() > k_max) {
        // Do not cut a UTF-8 sequence in half.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) {
            out.pop_back();
        }
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) {
            out.pop_back();
        }
        out += "...";
    }
    return "\"" + out + "\"";
}

namespace {

// The C locale, made once for the whole process (newlocale rather than setlocale: other threads'
// locales are left alone).
locale_t c_locale() {
    static const locale_t locale = [] {
        const locale_t made = ::newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
        if (made == static_cast<locale_t>(0)) {
            throw Error("cannot create the C locale for number parsing");
        }
        return made;
    }();
    return locale;
}

}  // namespace

double c_strtod(const char* text, char** end) {
    return ::strtod_l(text, end, c_locale());
}

float c_strtof(const char* text, char** end) {
    return ::strtof_l(text, end, c_locale());
}

namespace {

constexpr const char* k_out_of_range = "22003";
constexpr const char* k_bad_character = "22021";

// Integers ---------------------------------------------------------------------------------------

Value parse_integer(const Context& cx, std::int64_t min, std::int64_t max, const char* name) {
    const std::string_view s = trimmed(cx.text);
    std::size_t i = 0;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        negative = s[i] == '-';
        ++i;
    }
    if (i >= s.size()) {
        cx.syntax(name);
    }
    // Accumulate negatively so that the minimum of int64 fits.
    std::int64_t value = 0;
    bool overflow = false;
    for (; i < s.size(); ++i) {
        if (!is_digit(s[i])) {
            cx.syntax(name);
        }
        if (!overflow && (__builtin_mul_overflow(value, 10, &value) ||
                          __builtin_sub_overflow(value, s[i] - '0', &value))) {
            overflow = true;
        }
    }
    if (!negative && !overflow) {
        if (value == INT64_MIN) {
            overflow = true;
        } else {
            value = -value;
        }
    }
    if (overflow || value < min || value > max) {
        cx.fail("value " + shown(cx.text) + " is out of range for type " + name, k_out_of_range);
    }
    return Value(value);
}

// Floats -----------------------------------------------------------------------------------------

Value parse_floating(const Context& cx, bool single) {
    const char* name = single ? "real" : "double precision";
    // As float8in/float4in: blanks around, then whatever strtod/strtof take in the C locale
    // (decimal, exponent and hex notation, inf, infinity, nan and nan(...), any case).
    const std::string s(cx.text);
    const char* start = s.c_str();
    while (is_blank(*start)) {
        ++start;
    }
    if (*start == '\0') {
        cx.syntax(name);
    }
    errno = 0;
    char* end = nullptr;
    double value = 0;
    if (single) {
        value = static_cast<double>(c_strtof(start, &end));
    } else {
        value = c_strtod(start, &end);
    }
    if (end == start) {
        cx.syntax(name);
    }
    // ERANGE on a denormal result is fine (as on the server); true underflow and overflow are not.
    if (errno == ERANGE && (value == 0.0 || std::isinf(value))) {
        cx.fail(shown(cx.text) + " is out of range for type " + name, k_out_of_range);
    }
    while (is_blank(*end)) {
        ++end;
    }
    if (*end != '\0') {
        cx.syntax(name);
    }
    return Value(value);
}

// Boolean ----------------------------------------------------------------------------------------

Value parse_boolean(const Context& cx) {
    const std::string l = lowered(trimmed(cx.text));
    auto prefix_of = [&](std::string_view word, std::size_t min_length) {
        return l.size() >= min_length && l.size() <= word.size() &&
               word.compare(0, l.size(), l) == 0;
    };
    if (!l.empty()) {
        switch (l[0]) {
            case 't':
                if (prefix_of("true", 1)) {
                    return Value(true);
                }
                break;
            case 'f':
                if (prefix_of("false", 1)) {
                    return Value(false);
                }
                break;
            case 'y':
                if (prefix_of("yes", 1)) {
                    return Value(true);
                }
                break;
            case 'n':
                if (prefix_of("no", 1)) {
                    return Value(false);
                }
                break;
            case 'o':  // "o" alone could be on or off
                if (prefix_of("on", 2)) {
                    return Value(true);
                }
                if (prefix_of("off", 2)) {
                    return Value(false);
                }
                break;
            case '1':
                if (l.size() == 1) {
                    return Value(true);
                }
                break;
            case '0':
                if (l.size() == 1) {
                    return Value(false);
                }
                break;
            default:
                break;
        }
    }
    cx.syntax("boolean");
}

Value parse_by_kind(const Context& cx, const ColumnType& type, const TextValueOptions& options) {
    switch (type.kind) {
        case TypeKind::int2:
            return parse_integer(cx, INT16_MIN, INT16_MAX, "smallint");
        case TypeKind::int4:
            return parse_integer(cx, INT32_MIN, INT32_MAX, "integer");
        case TypeKind::int8:
            return parse_integer(cx, INT64_MIN, INT64_MAX, "bigint");
        case TypeKind::float4:
            return parse_floating(cx, true);
        case TypeKind::float8:
            return parse_floating(cx, false);
        case TypeKind::numeric: {
            std::optional<Numeric> number;
            try {
                number.emplace(cx.text);
            } catch (const Error& e) {
                if (e.sqlstate() == k_out_of_range) {
                    cx.fail_value("value overflows numeric format", k_out_of_range);
                }
                cx.syntax("numeric");
            }
            // numeric_in refuses a scale past 16383 before it rounds to the column's: here
            // numeric(5,2) would round 1e-16384 to 0.00.
            const std::string& text = number->text();
            const auto point = text.find('.');
            if (point != std::string::npos && text.size() - point - 1 > 16383) {
                cx.fail_value("value overflows numeric format", k_out_of_range);
            }
            return Value(*number);
        }
        case TypeKind::boolean:
            return parse_boolean(cx);
        case TypeKind::text:
        case TypeKind::varchar:
        case TypeKind::bpchar:
            return Value(std::string(cx.text));
        case TypeKind::json:
        case TypeKind::jsonb:
            check_json(cx, type.kind == TypeKind::jsonb);
            return Value(Json{std::string(cx.text)});
        case TypeKind::uuid:
            try {
                return Value(Uuid::parse(cx.text));
            } catch (const Error&) {
                cx.syntax("uuid");
            }
        case TypeKind::bytea:
            return parse_bytea(cx);
        case TypeKind::date:
            return parse_date(cx);
        case TypeKind::time:
            return parse_time(cx);
        case TypeKind::timestamp:
            return parse_timestamp(cx, false, options);
        case TypeKind::timestamptz:
            return parse_timestamp(cx, true, options);
        case TypeKind::interval:
            return parse_interval(cx, type.typmod, options.interval_style);
        case TypeKind::array:
            return parse_array(cx, type, options);
    }
    cx.fail_value("unsupported column type " + type.name, k_not_supported);
}

}  // namespace

}  // namespace detail::text_input

Value parse_text_value(std::string_view text, const ColumnType& type, std::string_view what,
                       const TextValueOptions& options) {
    using namespace detail::text_input;
    const Context cx{what, text};
    // Text input is a C string on the server: a NUL byte can never be part of a value.
    if (text.find('\0') != std::string_view::npos) {
        cx.fail_value("invalid byte sequence for encoding \"UTF8\": 0x00", k_bad_character);
    }
    Value value = parse_by_kind(cx, type, options);
    if (type.kind == TypeKind::array) {
        return value;  // elements were checked one by one
    }
    // What the encoder checks beyond syntax (UTF-8, varchar(n)/char(n) length, numeric(p,s)
    // precision): checked here so that a bad field fails with its value named.
    if (type.kind == TypeKind::text || type.kind == TypeKind::varchar ||
        type.kind == TypeKind::bpchar || type.kind == TypeKind::numeric ||
        type.kind == TypeKind::json || type.kind == TypeKind::jsonb) {
        thread_local std::string scratch;
        scratch.clear();
        try {
            encode_field(value, type, scratch, "");
        } catch (const Error& error) {
            cx.fail(std::string(error.what()) + ": " + shown(text), error.sqlstate().c_str());
        }
    }
    return value;
}

}  // namespace pg_ingest
