// Internal: what the parse_text_value modules (text_value*.cpp) share — the parsing context and
// its error construction, character helpers, a small scanner, and the per-type parsers that
// parse_text_value dispatches to. Not installed.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <pg_ingest/error.hpp>
#include <pg_ingest/text_value.hpp>
#include <pg_ingest/value.hpp>

#include "calendar.hpp"
#include "hex_digit.hpp"

// Nested below detail: the generic names here (Context, Scanner, is_blank) would otherwise share
// a namespace with the library's other internals.
namespace pg_ingest::detail::text_input {

// SQLSTATEs used by more than one module (the others are private to their module).
inline constexpr const char* k_invalid_text = "22P02";
inline constexpr const char* k_invalid_datetime = "22007";
inline constexpr const char* k_datetime_overflow = "22008";
inline constexpr const char* k_not_supported = "0A000";

// The value as shown in messages: long values cut, NUL bytes made visible.
std::string shown(std::string_view text);

// Parsing state shared by the helpers: what to prefix messages with and the whole field.
struct Context {
    std::string_view what;
    std::string_view text;

    [[noreturn]] void fail(const std::string& problem, const char* sqlstate,
                           const std::string& detail = "") const {
        std::string message(what);
        if (!message.empty()) {
            message += ": ";
        }
        throw Error(message + problem, sqlstate, detail, "", true);
    }
    // "<problem>: "<value>""
    [[noreturn]] void fail_value(const std::string& problem, const char* sqlstate,
                                 const std::string& detail = "") const {
        fail(problem + ": " + shown(text), sqlstate, detail);
    }
    [[noreturn]] void syntax(const char* type_name, const char* sqlstate = k_invalid_text) const {
        fail_value(std::string("invalid input syntax for type ") + type_name, sqlstate);
    }
};

inline bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
inline bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
inline std::string lowered(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = lower(c);
    }
    return out;
}

// strtod/strtof in the C locale, as the server's float8in/float4in and date/time fractions read
// numbers (its LC_NUMERIC is always C): the process locale may use a decimal comma.
double c_strtod(const char* text, char** end);
float c_strtof(const char* text, char** end);

inline std::string_view trimmed(std::string_view text) {
    while (!text.empty() && is_blank(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_blank(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

// The fields of an H:M[:S] reading; seconds 0 when absent.
struct Clock {
    std::int64_t hours = 0;
    std::int64_t minutes = 0;
    std::int64_t seconds = 0;
    bool with_seconds = false;
};

// A cursor over one token or field, for the date/time and interval parsers.
struct Scanner {
    std::string_view s;
    std::size_t pos = 0;
    bool done() const { return pos >= s.size(); }
    char peek(std::size_t ahead = 0) const {
        return pos + ahead < s.size() ? s[pos + ahead] : '\0';
    }
    // Up to `max` digits, at least `min`; false (pos unchanged) otherwise.
    bool digits(std::size_t min, std::size_t max, std::int64_t& out, std::size_t* count = nullptr) {
        std::size_t n = 0;
        std::int64_t v = 0;
        while (n < max && is_digit(peek(n))) {
            v = v * 10 + (peek(n) - '0');
            ++n;
        }
        if (n < min) {
            return false;
        }
        pos += n;
        out = v;
        if (count != nullptr) {
            *count = n;
        }
        return true;
    }
    void skip_blanks() {
        while (!done() && is_blank(s[pos])) {
            ++pos;
        }
    }
    // H:M[:S], the hours of up to `hour_digits` digits, minutes and seconds of `field_digits` to 2;
    // nullopt when the text does not have that form.
    std::optional<Clock> clock(std::size_t hour_digits, std::size_t field_digits) {
        Clock c;
        if (!digits(1, hour_digits, c.hours) || peek() != ':') {
            return std::nullopt;
        }
        ++pos;
        if (!digits(field_digits, 2, c.minutes)) {
            return std::nullopt;
        }
        c.with_seconds = peek() == ':';
        if (c.with_seconds) {
            ++pos;
            if (!digits(field_digits, 2, c.seconds)) {
                return std::nullopt;
            }
        }
        return c;
    }
    // At a '.': consumes it and the digits after it, returns their value as a fraction (".5" is
    // 0.5, a lone "." 0). Elsewhere, or should the digits not read as a number: 0, nothing
    // consumed (the caller then finds the '.' where it expects an end).
    double fraction() {
        if (peek() != '.') {
            return 0;
        }
        const std::size_t dot = pos;
        std::size_t end = dot + 1;
        while (end < s.size() && is_digit(s[end])) {
            ++end;
        }
        if (end == dot + 1) {
            pos = end;
            return 0;
        }
        const std::string digits(s.substr(dot, end - dot));
        char* stop = nullptr;
        const double value = c_strtod(digits.c_str(), &stop);
        if (stop != digits.c_str() + digits.size()) {
            return 0;
        }
        pos = end;
        return value;
    }
};

// The per-type parsers in the other modules; each throws through cx on bad input.

// text_value_datetime.cpp
Value parse_date(const Context& cx);
Value parse_time(const Context& cx);
Value parse_timestamp(const Context& cx, bool with_zone, const TextValueOptions& options);

// text_value_interval.cpp: `typmod` is the column's (its fields decide what a bare number is).
Value parse_interval(const Context& cx, std::int32_t typmod, IntervalStyle style);

// text_value_bytea.cpp
Value parse_bytea(const Context& cx);

// text_value_json.cpp: validates only (json/jsonb values are kept as the text given).
// refuse_deep: nesting beyond 6000 levels is an error (54001), so that a loader rejects the one
// field rather than have the server fail the whole statement (the server's limit follows its
// max_stack_depth: about 14500 levels at the default 2MB); else it is left unchecked.
void check_json(const Context& cx, bool jsonb, bool refuse_deep = true);

// text_value_array.cpp: one-dimensional arrays, elements through parse_text_value.
Value parse_array(const Context& cx, const ColumnType& type, const TextValueOptions& options);

}  // namespace pg_ingest::detail::text_input
