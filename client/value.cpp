#include <pg_ingest/value.hpp>

#include <algorithm>
#include <cmath>
#include <cfloat>
#include <cstdio>
#include <cstring>
#include <limits>

#include <pg_ingest/error.hpp>

#include "calendar.hpp"
#include "server_charset.hpp"
#include "text_value_internal.hpp"

namespace pg_ingest {

namespace {

// SQLSTATEs used for values that do not fit (the codes the server would use).
constexpr const char* k_datatype_mismatch = "42804";
constexpr const char* k_out_of_range = "22003";
constexpr const char* k_datetime_overflow = "22008";
constexpr const char* k_string_too_long = "22001";
constexpr const char* k_bad_character = "22021";
constexpr const char* k_untranslatable = "22P05";
constexpr const char* k_invalid_text = "22P02";
constexpr const char* k_invalid_datetime = "22007";

[[noreturn]] void value_error(std::string_view what, const std::string& problem,
                              const char* sqlstate) {
    std::string message(what);
    if (!message.empty()) {
        message += ": ";
    }
    message += problem;
    throw Error(message, sqlstate, "", "", true);
}

// Days since 2000-01-01 (the server's epoch) ----------------------------------------------------

using detail::days_in_month;
using detail::days_since_2000;
using detail::k_end_date_days;
using detail::k_end_timestamp;
using detail::k_min_date_days;
using detail::k_min_timestamp;
using detail::k_unix_to_pg_days;
using detail::k_usecs_per_day;
using detail::k_usecs_per_second;

constexpr std::int64_t k_unix_to_pg_usecs = k_unix_to_pg_days * k_usecs_per_day;

std::int64_t pg_days(int year, int month, int day) {
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) {
        value_error("",
                    "invalid date " + std::to_string(year) + "-" + std::to_string(month) + "-" +
                        std::to_string(day),
                    k_datetime_overflow);
    }
    return days_since_2000(year, month, day);
}

// `days` as a date value, or Error 22008 past the server's date range.
std::int32_t checked_date_days(std::int64_t days, std::string_view text) {
    if (days < k_min_date_days || days >= k_end_date_days) {
        value_error("", "date out of range: \"" + std::string(text) + "\"", k_datetime_overflow);
    }
    return static_cast<std::int32_t>(days);
}

// Microseconds since 2000-01-01 00:00 of `days` + `time_us` - `offset_seconds`, or Error 22008
// past the server's timestamp range (as the server checks, the instant, after the offset). Summed
// in seconds first: |days| is at most ~8e11 (an int year), so nothing here can overflow, where
// days * k_usecs_per_day would for years past 294276.
std::int64_t checked_timestamp_micros(std::int64_t days, std::int64_t time_us,
                                      std::int64_t offset_seconds, std::string_view text) {
    const std::int64_t seconds = days * 86400 + time_us / k_usecs_per_second - offset_seconds;
    if (seconds < k_min_timestamp / k_usecs_per_second ||
        seconds >= k_end_timestamp / k_usecs_per_second) {
        value_error("", "timestamp out of range: \"" + std::string(text) + "\"",
                    k_datetime_overflow);
    }
    return seconds * k_usecs_per_second + time_us % k_usecs_per_second;
}

// "586542-01-01" for messages (astronomical years: 0 is 1 BC).
std::string ymd_text(int year, int month, int day) {
    const auto two = [](int n) { return (n >= 0 && n < 10 ? "0" : "") + std::to_string(n); };
    return std::to_string(year) + "-" + two(month) + "-" + two(day);
}

// As the server's time_overflows(): each field in range, second 60 allowed (a leap second,
// read as the next minute's 0), and the whole no later than 24:00:00.
std::int64_t time_usecs(int hour, int minute, int second, int microsecond) {
    if (hour < 0 || minute < 0 || minute > 59 || second < 0 || second > 60 || microsecond < 0 ||
        microsecond > 999999 || hour > 24) {
        value_error("", "time of day out of range", k_datetime_overflow);
    }
    const std::int64_t us = ((hour * 60LL + minute) * 60LL + second) * 1000000LL + microsecond;
    if (us > k_usecs_per_day) {
        value_error("", "time of day out of range", k_datetime_overflow);
    }
    return us;
}

// A tiny cursor for the ISO date/time parsers.
struct Cursor {
    std::string_view text;
    std::size_t pos = 0;
    bool done() const { return pos >= text.size(); }
    char peek() const { return done() ? '\0' : text[pos]; }
    bool accept(char c) {
        if (peek() == c) {
            ++pos;
            return true;
        }
        return false;
    }
    // Exactly `min..max` decimal digits.
    bool number(int min, int max, std::int64_t& out, int* count = nullptr) {
        int n = 0;
        out = 0;
        while (!done() && n < max && text[pos] >= '0' && text[pos] <= '9') {
            out = out * 10 + (text[pos] - '0');
            ++pos;
            ++n;
        }
        if (count != nullptr) {
            *count = n;
        }
        return n >= min;
    }
};

[[noreturn]] void bad_datetime(std::string_view kind, std::string_view text) {
    value_error(
        "",
        "invalid input syntax for type " + std::string(kind) + ": \"" + std::string(text) + "\"",
        k_invalid_datetime);
}

std::int64_t parse_date_part(Cursor& c, std::string_view kind) {
    std::int64_t year = 0;
    std::int64_t month = 0;
    std::int64_t day = 0;
    if (!c.number(4, 7, year) || !c.accept('-') || !c.number(2, 2, month) || !c.accept('-') ||
        !c.number(2, 2, day)) {
        bad_datetime(kind, c.text);
    }
    if (year == 0) {
        // The server has no year 0 in text ('0000-01-01' is an error there, not 1 BC).
        value_error("", "date/time field value out of range: \"" + std::string(c.text) + "\"",
                    k_datetime_overflow);
    }
    return pg_days(static_cast<int>(year), static_cast<int>(month), static_cast<int>(day));
}

std::int64_t parse_time_part(Cursor& c, std::string_view kind) {
    std::int64_t hour = 0;
    std::int64_t minute = 0;
    std::int64_t second = 0;
    std::int64_t fraction = 0;
    if (!c.number(2, 2, hour) || !c.accept(':') || !c.number(2, 2, minute)) {
        bad_datetime(kind, c.text);
    }
    if (c.accept(':')) {
        if (!c.number(2, 2, second)) {
            bad_datetime(kind, c.text);
        }
        if (c.accept('.')) {
            int digits = 0;
            if (!c.number(1, 6, fraction, &digits)) {
                bad_datetime(kind, c.text);
            }
            for (; digits < 6; ++digits) {
                fraction *= 10;
            }
            if (c.peek() >= '0' && c.peek() <= '9') {
                bad_datetime(kind, c.text);  // more than microsecond precision: not silently cut
            }
        }
    }
    return time_usecs(static_cast<int>(hour), static_cast<int>(minute), static_cast<int>(second),
                      static_cast<int>(fraction));
}

// Numeric text -----------------------------------------------------------------------------------

struct Decimal {
    bool negative = false;
    std::string integer;   // no leading zeros; empty for zero
    std::string fraction;  // dscale digits
    enum class Special { none, nan, pos_inf, neg_inf } special = Special::none;
};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

enum class DecimalParse { ok, syntax, overflow };

// numeric_in's reading of text: syntax errors are 22P02, values outside numeric's range 22003.
DecimalParse parse_decimal(std::string_view text, Decimal& out) {
    out = Decimal();
    // numeric_in skips what isspace() takes, before and after.
    const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    while (!text.empty() && space(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && space(text.back())) {
        text.remove_suffix(1);
    }
    if (iequals(text, "nan")) {
        out.special = Decimal::Special::nan;
        return DecimalParse::ok;
    }
    if (iequals(text, "infinity") || iequals(text, "+infinity") || iequals(text, "inf") ||
        iequals(text, "+inf")) {
        out.special = Decimal::Special::pos_inf;
        return DecimalParse::ok;
    }
    if (iequals(text, "-infinity") || iequals(text, "-inf")) {
        out.special = Decimal::Special::neg_inf;
        return DecimalParse::ok;
    }
    std::size_t i = 0;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
        out.negative = text[i] == '-';
        ++i;
    }
    std::string digits;
    std::int64_t point = -1;
    bool any = false;
    for (; i < text.size(); ++i) {
        const char c = text[i];
        if (c >= '0' && c <= '9') {
            digits += c;
            any = true;
        } else if (c == '.' && point < 0) {
            point = static_cast<std::int64_t>(digits.size());
        } else {
            break;
        }
    }
    if (!any) {
        return DecimalParse::syntax;
    }
    if (point < 0) {
        point = static_cast<std::int64_t>(digits.size());
    }
    if (i < text.size()) {
        if (text[i] != 'e' && text[i] != 'E') {
            return DecimalParse::syntax;
        }
        ++i;
        // The exponent is read with strtol, which skips blanks before it ("1e 5").
        while (i < text.size() && space(text[i])) {
            ++i;
        }
        bool negative_exponent = false;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
            negative_exponent = text[i] == '-';
            ++i;
        }
        std::int64_t exponent = 0;
        if (i >= text.size()) {
            return DecimalParse::syntax;
        }
        for (; i < text.size(); ++i) {
            if (text[i] < '0' || text[i] > '9') {
                return DecimalParse::syntax;
            }
            exponent = std::min<std::int64_t>(exponent * 10 + (text[i] - '0'), INT32_MAX);
        }
        // The server refuses an exponent of INT_MAX/2 or more either way. Below that, a value
        // past 10^131072 or with more than 16383 digits after the point is out of range too,
        // except that zero times any smaller power of ten is zero. Past 10^6 only that zero can
        // fit, and the digits are not expanded.
        if (exponent > 1000000) {
            const bool zero = digits.find_first_not_of('0') == std::string::npos;
            if (exponent >= INT32_MAX / 2 || negative_exponent || !zero) {
                return DecimalParse::overflow;
            }
            out.negative = false;
            return DecimalParse::ok;
        }
        point += negative_exponent ? -exponent : exponent;
    }
    // Re-split digits around the (possibly moved) point.
    if (point <= 0) {
        out.fraction = std::string(static_cast<std::size_t>(-point), '0') + digits;
    } else if (point >= static_cast<std::int64_t>(digits.size())) {
        out.integer = digits + std::string(static_cast<std::size_t>(point) - digits.size(), '0');
    } else {
        out.integer = digits.substr(0, static_cast<std::size_t>(point));
        out.fraction = digits.substr(static_cast<std::size_t>(point));
    }
    const auto first = out.integer.find_first_not_of('0');
    out.integer = first == std::string::npos ? std::string() : out.integer.substr(first);
    if (out.integer.empty() && out.fraction.find_first_not_of('0') == std::string::npos) {
        out.negative = false;  // -0 is 0
    }
    return DecimalParse::ok;
}

std::string decimal_text(const Decimal& d) {
    switch (d.special) {
        case Decimal::Special::nan:
            return "NaN";
        case Decimal::Special::pos_inf:
            return "Infinity";
        case Decimal::Special::neg_inf:
            return "-Infinity";
        case Decimal::Special::none:
            break;
    }
    std::string text = d.negative ? "-" : "";
    text += d.integer.empty() ? "0" : d.integer;
    if (!d.fraction.empty()) {
        text += "." + d.fraction;
    }
    return text;
}

// Rounds half away from zero to `scale` fraction digits (scale may be negative), as the server
// does when applying numeric(p,s).
void round_decimal(Decimal& d, int scale) {
    if (d.special != Decimal::Special::none) {
        return;
    }
    std::string digits = d.integer + d.fraction;
    std::int64_t point = static_cast<std::int64_t>(d.integer.size());
    const std::int64_t keep = point + scale;  // digits kept
    if (keep >= static_cast<std::int64_t>(digits.size())) {
        if (scale > 0) {
            d.fraction.resize(static_cast<std::size_t>(scale), '0');
        }
        return;
    }
    bool round_up = keep >= 0 && digits[static_cast<std::size_t>(keep)] >= '5';
    std::string kept = keep > 0 ? digits.substr(0, static_cast<std::size_t>(keep)) : "";
    if (round_up) {
        int i = static_cast<int>(kept.size()) - 1;
        while (i >= 0 && kept[static_cast<std::size_t>(i)] == '9') {
            kept[static_cast<std::size_t>(i)] = '0';
            --i;
        }
        if (i >= 0) {
            ++kept[static_cast<std::size_t>(i)];
        } else {
            kept.insert(kept.begin(), '1');
            ++point;
        }
    }
    // Digits beyond the scale become zeros (negative scale) or disappear.
    const std::int64_t int_digits = point;
    if (scale >= 0) {
        const std::size_t integer_len =
            static_cast<std::size_t>(std::max<std::int64_t>(0, int_digits));
        std::string all = kept;
        if (all.size() < integer_len + static_cast<std::size_t>(scale)) {
            all.resize(integer_len + static_cast<std::size_t>(scale), '0');
        }
        d.integer = all.substr(0, integer_len);
        d.fraction = all.substr(integer_len);
    } else {
        std::string all = kept;
        if (static_cast<std::int64_t>(all.size()) < int_digits) {
            all.resize(static_cast<std::size_t>(int_digits), '0');
        }
        d.integer = all;
        d.fraction.clear();
    }
    const auto first = d.integer.find_first_not_of('0');
    d.integer = first == std::string::npos ? std::string() : d.integer.substr(first);
    if (d.integer.empty() && d.fraction.find_first_not_of('0') == std::string::npos) {
        d.negative = false;
    }
}

void put16(std::string& out, std::uint16_t v) {
    out += static_cast<char>(v >> 8);
    out += static_cast<char>(v & 0xff);
}
void put32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out += static_cast<char>((v >> shift) & 0xff);
    }
}
void put64(std::string& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) {
        out += static_cast<char>((v >> shift) & 0xff);
    }
}

// The numeric binary form: ndigits, weight, sign, dscale, base-10000 digits.
void encode_decimal(const Decimal& d, std::string& out, std::string_view what) {
    std::uint16_t sign = d.negative ? 0x4000 : 0x0000;
    if (d.special != Decimal::Special::none) {
        sign = d.special == Decimal::Special::nan       ? 0xC000
               : d.special == Decimal::Special::pos_inf ? 0xD000
                                                        : 0xF000;
        put16(out, 0);
        put16(out, 0);
        put16(out, sign);
        put16(out, 0);
        return;
    }
    if (d.fraction.size() > 0x3FFF) {
        value_error(
            what,
            "numeric scale " + std::to_string(d.fraction.size()) + " exceeds the maximum of 16383",
            k_out_of_range);
    }
    std::string integer = d.integer;
    integer.insert(0, (4 - integer.size() % 4) % 4, '0');
    std::string fraction = d.fraction;
    fraction.append((4 - fraction.size() % 4) % 4, '0');
    std::vector<std::uint16_t> groups;
    groups.reserve((integer.size() + fraction.size()) / 4);
    auto group = [](const std::string& s, std::size_t at) {
        return static_cast<std::uint16_t>((s[at] - '0') * 1000 + (s[at + 1] - '0') * 100 +
                                          (s[at + 2] - '0') * 10 + (s[at + 3] - '0'));
    };
    for (std::size_t i = 0; i < integer.size(); i += 4) {
        groups.push_back(group(integer, i));
    }
    for (std::size_t i = 0; i < fraction.size(); i += 4) {
        groups.push_back(group(fraction, i));
    }
    std::int64_t weight = static_cast<std::int64_t>(integer.size() / 4) - 1;
    std::size_t first = 0;
    while (first < groups.size() && groups[first] == 0) {
        ++first;
        --weight;
    }
    std::size_t last = groups.size();
    while (last > first && groups[last - 1] == 0) {
        --last;
    }
    if (first == last) {
        weight = 0;
        sign = 0;
    }
    const std::size_t ndigits = last - first;
    // The binary form counts digits in 16 bits and weighs them in a signed 16-bit word (the
    // server's own range, 131072 digits before the point and 16383 after, fits both).
    if (ndigits > 0xFFFF || weight > 0x7FFF || weight < -0x8000) {
        value_error(what, "numeric value has too many significant digits for binary transfer",
                    k_out_of_range);
    }
    put16(out, static_cast<std::uint16_t>(ndigits));
    put16(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(weight)));
    put16(out, sign);
    put16(out, static_cast<std::uint16_t>(d.fraction.size()));
    for (std::size_t i = first; i < last; ++i) {
        put16(out, groups[i]);
    }
}

// Text checks ------------------------------------------------------------------------------------

// Code points in valid UTF-8, or npos when invalid (overlong, surrogate, truncated, > U+10FFFF).
std::size_t utf8_length(std::string_view text, std::size_t& bad_at) {
    std::size_t count = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            n = 1;
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4;
            cp = c & 0x07;
        } else {
            bad_at = i;
            return std::string_view::npos;
        }
        if (i + n > text.size()) {
            bad_at = i;
            return std::string_view::npos;
        }
        for (std::size_t k = 1; k < n; ++k) {
            const auto cc = static_cast<unsigned char>(text[i + k]);
            if ((cc & 0xC0) != 0x80) {
                bad_at = i;
                return std::string_view::npos;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        const bool overlong =
            (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
        if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            bad_at = i;
            return std::string_view::npos;
        }
        i += n;
        ++count;
    }
    return count;
}

// Checks encoding and NUL bytes; returns the text to send (varchar/char(n) may drop trailing
// spaces beyond n, as the server does).
std::string_view checked_text(std::string_view text, const ColumnType& type,
                              std::string_view what) {
    const auto nul = text.find('\0');
    if (nul != std::string_view::npos) {
        value_error(what,
                    "text contains a NUL byte at offset " + std::to_string(nul) +
                        " (PostgreSQL text cannot hold NUL; use bytea)",
                    k_bad_character);
    }
    std::size_t bad_at = 0;
    const std::size_t length = utf8_length(text, bad_at);
    if (length == std::string_view::npos) {
        value_error(what, "invalid UTF-8 byte sequence at offset " + std::to_string(bad_at),
                    k_bad_character);
    }
    if (type.charset) {
        std::size_t bytes = 0;
        const std::size_t at = type.charset->first_unheld(text, bytes);
        if (at != std::string_view::npos) {
            static const char* const hex = "0123456789abcdef";
            std::string sequence;
            for (std::size_t k = 0; k < bytes; ++k) {
                const auto c = static_cast<unsigned char>(text[at + k]);
                sequence += std::string(k ? " 0x" : "0x") + hex[c >> 4] + hex[c & 15];
            }
            value_error(what,
                        "character with byte sequence " + sequence +
                            " in encoding \"UTF8\" has no equivalent in encoding \"" +
                            type.charset->name() + "\" (the database's encoding), at offset " +
                            std::to_string(at),
                        k_untranslatable);
        }
    }
    if ((type.kind == TypeKind::varchar || type.kind == TypeKind::bpchar) && type.typmod >= 4) {
        const std::size_t limit = static_cast<std::size_t>(type.typmod - 4);
        if (length > limit) {
            // Find the byte offset of character `limit`; beyond it only spaces may follow.
            std::size_t chars = 0;
            std::size_t at = 0;
            while (at < text.size() && chars < limit) {
                const auto c = static_cast<unsigned char>(text[at]);
                at += c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
                ++chars;
            }
            if (text.find_first_not_of(' ', at) != std::string_view::npos) {
                value_error(what,
                            "value too long for type " + type.name + " (" + std::to_string(length) +
                                " characters)",
                            k_string_too_long);
            }
            return text.substr(0, at);
        }
    }
    return text;
}

const char* kind_name(TypeKind kind) {
    switch (kind) {
        case TypeKind::boolean:
            return "boolean";
        case TypeKind::int2:
            return "smallint";
        case TypeKind::int4:
            return "integer";
        case TypeKind::int8:
            return "bigint";
        case TypeKind::float4:
            return "real";
        case TypeKind::float8:
            return "double precision";
        case TypeKind::numeric:
            return "numeric";
        case TypeKind::text:
            return "text";
        case TypeKind::varchar:
            return "character varying";
        case TypeKind::bpchar:
            return "character";
        case TypeKind::json:
            return "json";
        case TypeKind::jsonb:
            return "jsonb";
        case TypeKind::bytea:
            return "bytea";
        case TypeKind::date:
            return "date";
        case TypeKind::time:
            return "time without time zone";
        case TypeKind::timestamp:
            return "timestamp without time zone";
        case TypeKind::timestamptz:
            return "timestamp with time zone";
        case TypeKind::interval:
            return "interval";
        case TypeKind::uuid:
            return "uuid";
        case TypeKind::array:
            return "array";
    }
    return "?";
}

[[noreturn]] void mismatch(const Value& value, const ColumnType& type, std::string_view what) {
    const std::string name = type.name.empty() ? kind_name(type.kind) : type.name;
    value_error(what,
                std::string("a ") + to_string(value.kind()) + " value cannot be written to a " +
                    name + " column",
                k_datatype_mismatch);
}

Decimal numeric_of(const Value& value, const ColumnType& type, std::string_view what) {
    Decimal d;
    switch (value.kind()) {
        case Value::Kind::numeric:
            parse_decimal(std::get<Numeric>(value.storage()).text(), d);
            break;
        case Value::Kind::integer:
            parse_decimal(std::to_string(std::get<std::int64_t>(value.storage())), d);
            break;
        case Value::Kind::floating: {
            const double f = std::get<double>(value.storage());
            if (std::isnan(f)) {
                d.special = Decimal::Special::nan;
            } else if (std::isinf(f)) {
                d.special = f > 0 ? Decimal::Special::pos_inf : Decimal::Special::neg_inf;
            } else {
                // As the server's float8 -> numeric cast (what INSERT does with a double
                // parameter): 15 significant digits (DBL_DIG), so 0.1 + 0.2 is 0.3, not
                // 0.30000000000000004.
                char buffer[64];
                const int length = std::snprintf(buffer, sizeof(buffer), "%.*g", DBL_DIG, f);
                parse_decimal(std::string_view(buffer, static_cast<std::size_t>(length)), d);
            }
            break;
        }
        case Value::Kind::text:
            switch (parse_decimal(std::get<std::string>(value.storage()), d)) {
                case DecimalParse::ok:
                    break;
                case DecimalParse::syntax:
                    value_error(what,
                                "invalid input syntax for type numeric: \"" +
                                    std::get<std::string>(value.storage()) + "\"",
                                k_invalid_text);
                case DecimalParse::overflow:
                    value_error(what, "value overflows numeric format", k_out_of_range);
            }
            break;
        default:
            mismatch(value, type, what);
    }
    if (type.typmod >= 4) {
        const int tm = type.typmod - 4;
        const int precision = (tm >> 16) & 0xFFFF;
        const int scale = ((tm & 0x7FF) ^ 1024) - 1024;
        if (d.special == Decimal::Special::pos_inf || d.special == Decimal::Special::neg_inf) {
            value_error(what, "infinity does not fit " + type.name, k_out_of_range);
        }
        round_decimal(d, scale);
        // Where the most significant nonzero digit sits: 1 for units, 0 for tenths, -1 for
        // hundredths... The server's rule; it also covers a scale above the precision
        // (numeric(3,5) takes 0.00123, not 0.0123).
        const auto first = d.integer.find_first_not_of('0');
        std::int64_t position = 0;
        bool nonzero = first != std::string::npos;
        if (nonzero) {
            position = static_cast<std::int64_t>(d.integer.size() - first);
        } else {
            const auto in_fraction = d.fraction.find_first_not_of('0');
            nonzero = in_fraction != std::string::npos;
            position = -static_cast<std::int64_t>(in_fraction);
        }
        if (d.special == Decimal::Special::none && nonzero && position > precision - scale) {
            value_error(what, "numeric value " + decimal_text(d) + " overflows " + type.name,
                        k_out_of_range);
        }
    }
    return d;
}

std::int64_t checked_days(std::int32_t days, std::string_view what) {
    if (days != INT32_MAX && days != INT32_MIN &&
        (days < k_min_date_days || days >= k_end_date_days)) {
        value_error(what, "date out of range", k_datetime_overflow);
    }
    return days;
}

// The server's rounding of a time, timestamp or interval's microseconds to `precision`
// fractional digits (AdjustTimestampForTypmod: half away from zero); infinities stay.
std::int64_t rounded_micros(std::int64_t micros, std::int32_t precision) {
    if (precision < 0 || precision >= 6 || micros == INT64_MAX || micros == INT64_MIN) {
        return micros;
    }
    std::int64_t scale = 1;
    for (std::int32_t digits = precision; digits < 6; ++digits) {
        scale *= 10;
    }
    const std::int64_t offset = scale / 2;
    return micros >= 0 ? (micros + offset) / scale * scale : -((-micros + offset) / scale * scale);
}

std::int32_t interval_precision(std::int32_t typmod) {
    const std::int32_t precision = typmod < 0 ? 0xFFFF : typmod & 0xFFFF;
    return precision == 0xFFFF ? -1 : precision;
}

std::int64_t checked_timestamp(std::int64_t micros, std::string_view what) {
    if (micros != INT64_MAX && micros != INT64_MIN &&
        (micros < k_min_timestamp || micros >= k_end_timestamp)) {
        value_error(what, "timestamp out of range", k_datetime_overflow);
    }
    return micros;
}

// The server checks a timestamp's range before it rounds it to the column's precision, so a
// value just below the end may round past it and is stored. Sent rounded it would fail the
// server's check on the value received: such a value is sent as it is, for the server to round.
std::int64_t rounded_timestamp(std::int64_t micros, std::int32_t precision) {
    const std::int64_t rounded = rounded_micros(micros, precision);
    return rounded >= k_end_timestamp && micros != INT64_MAX ? micros : rounded;
}

std::uint32_t float_bits(float f) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof(bits));
    return bits;
}
std::uint64_t double_bits(double f) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &f, sizeof(bits));
    return bits;
}

double floating_of(const Value& value, const ColumnType& type, std::string_view what) {
    if (value.kind() == Value::Kind::floating) {
        return std::get<double>(value.storage());
    }
    if (value.kind() == Value::Kind::integer) {
        return static_cast<double>(std::get<std::int64_t>(value.storage()));
    }
    mismatch(value, type, what);
}

float float4_of(const Value& value, const ColumnType& type, std::string_view what) {
    if (value.kind() == Value::Kind::integer) {
        // As the server's int8 -> float4 cast: rounded once, not through a double.
        return static_cast<float>(std::get<std::int64_t>(value.storage()));
    }
    const double f = floating_of(value, type, what);
    // As the server's float8 -> float4 cast, an overflow is a finite value that rounds to
    // infinity: from FLT_MAX + half its unit in the last place (2^103) on. Below that it
    // rounds to FLT_MAX, which is stored.
    constexpr double k_float4_overflow =
        static_cast<double>(std::numeric_limits<float>::max()) + 0x1p103;
    if (std::isfinite(f) && std::fabs(f) >= k_float4_overflow) {
        value_error(what, "value out of range for type real", k_out_of_range);
    }
    // As the server's float8 -> float4 cast: a value that would round to zero is an underflow
    // (22003), not a silent 0 (subnormal results are kept).
    const float narrowed = static_cast<float>(f);
    if (narrowed == 0.0f && f != 0.0) {
        value_error(what, "value out of range for type real: underflow", k_out_of_range);
    }
    return narrowed;
}

// The value bytes (without the length word) for a non-NULL value.
void encode_payload(const Value& value, const ColumnType& type, std::string& out,
                    std::string_view what) {
    const auto& storage = value.storage();
    switch (type.kind) {
        case TypeKind::boolean:
            if (value.kind() != Value::Kind::boolean) {
                mismatch(value, type, what);
            }
            out += std::get<bool>(storage) ? '\1' : '\0';
            return;
        case TypeKind::int2:
        case TypeKind::int4:
        case TypeKind::int8: {
            if (value.kind() != Value::Kind::integer) {
                mismatch(value, type, what);
            }
            const std::int64_t v = std::get<std::int64_t>(storage);
            if (type.kind == TypeKind::int2) {
                if (v < INT16_MIN || v > INT16_MAX) {
                    value_error(what,
                                "value " + std::to_string(v) + " is out of range for type smallint",
                                k_out_of_range);
                }
                put16(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(v)));
            } else if (type.kind == TypeKind::int4) {
                if (v < INT32_MIN || v > INT32_MAX) {
                    value_error(what,
                                "value " + std::to_string(v) + " is out of range for type integer",
                                k_out_of_range);
                }
                put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
            } else {
                put64(out, static_cast<std::uint64_t>(v));
            }
            return;
        }
        case TypeKind::float4:
            put32(out, float_bits(float4_of(value, type, what)));
            return;
        case TypeKind::float8:
            put64(out, double_bits(floating_of(value, type, what)));
            return;
        case TypeKind::numeric:
            encode_decimal(numeric_of(value, type, what), out, what);
            return;
        case TypeKind::text:
        case TypeKind::varchar:
        case TypeKind::bpchar:
            if (value.kind() != Value::Kind::text) {
                mismatch(value, type, what);
            }
            out += checked_text(std::get<std::string>(storage), type, what);
            return;
        case TypeKind::json:
        case TypeKind::jsonb: {
            std::string_view text;
            if (value.kind() == Value::Kind::json) {
                text = std::get<Json>(storage).text;
            } else if (value.kind() == Value::Kind::text) {
                text = std::get<std::string>(storage);
            } else {
                mismatch(value, type, what);
            }
            // NUL bytes and bad UTF-8 first (22021), then the document as the server would
            // parse it (22P02): a bad one is refused by write(), never later with a batch.
            const auto checked = checked_text(text, type, what);
            detail::text_input::check_json(detail::text_input::Context{what, text},
                                           type.kind == TypeKind::jsonb, false);
            if (type.kind == TypeKind::jsonb) {
                out += '\1';  // jsonb binary format version
            }
            out += checked;
            return;
        }
        case TypeKind::bytea:
            if (value.kind() != Value::Kind::bytes) {
                mismatch(value, type, what);
            }
            out += std::get<Bytes>(storage).data;
            return;
        case TypeKind::date:
            if (value.kind() != Value::Kind::date) {
                mismatch(value, type, what);
            }
            put32(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(
                           checked_days(std::get<Date>(storage).days, what))));
            return;
        case TypeKind::time: {
            if (value.kind() != Value::Kind::time) {
                mismatch(value, type, what);
            }
            const std::int64_t us = std::get<Time>(storage).microseconds;
            if (us < 0 || us > k_usecs_per_day) {
                value_error(what, "time of day out of range", k_datetime_overflow);
            }
            // Rounded to the column's precision here, as the server rounds what COPY and INSERT
            // store: statement parameters (DELETE and UPDATE keys) are compared unrounded.
            put64(out, static_cast<std::uint64_t>(rounded_micros(us, type.typmod)));
            return;
        }
        case TypeKind::timestamp:
            if (value.kind() != Value::Kind::timestamp) {
                mismatch(value, type, what);
            }
            put64(out, static_cast<std::uint64_t>(rounded_timestamp(
                           checked_timestamp(std::get<Timestamp>(storage).microseconds, what),
                           type.typmod)));
            return;
        case TypeKind::timestamptz:
            if (value.kind() != Value::Kind::timestamptz) {
                mismatch(value, type, what);
            }
            put64(out, static_cast<std::uint64_t>(rounded_timestamp(
                           checked_timestamp(std::get<TimestampTz>(storage).microseconds, what),
                           type.typmod)));
            return;
        case TypeKind::interval: {
            if (value.kind() != Value::Kind::interval) {
                mismatch(value, type, what);
            }
            const Interval& iv = std::get<Interval>(storage);
            put64(out, static_cast<std::uint64_t>(
                           rounded_micros(iv.microseconds, interval_precision(type.typmod))));
            put32(out, static_cast<std::uint32_t>(iv.days));
            put32(out, static_cast<std::uint32_t>(iv.months));
            return;
        }
        case TypeKind::uuid:
            if (value.kind() == Value::Kind::uuid) {
                const auto& bytes = std::get<Uuid>(storage).bytes;
                out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            } else if (value.kind() == Value::Kind::text) {
                Uuid parsed;
                try {
                    parsed = Uuid::parse(std::get<std::string>(storage));
                } catch (const Error& error) {
                    value_error(what, error.what(), k_invalid_text);
                }
                out.append(reinterpret_cast<const char*>(parsed.bytes.data()), parsed.bytes.size());
            } else {
                mismatch(value, type, what);
            }
            return;
        case TypeKind::array: {
            if (value.kind() != Value::Kind::array) {
                mismatch(value, type, what);
            }
            const auto& elements = std::get<Array>(storage).elements;
            ColumnType element;
            element.kind = type.element_kind;
            element.oid = type.element_oid;
            element.typmod = type.typmod;  // array columns carry the element typmod
            element.charset = type.charset;
            // "character varying(2)" from "character varying(2)[]": errors name the typmod.
            element.name =
                type.name.size() > 2 && type.name.compare(type.name.size() - 2, 2, "[]") == 0
                    ? type.name.substr(0, type.name.size() - 2)
                    : kind_name(type.element_kind);
            const bool has_null = std::any_of(elements.begin(), elements.end(),
                                              [](const Value& v) { return v.is_null(); });
            if (elements.size() > static_cast<std::size_t>(INT32_MAX)) {
                value_error(what, "array too large", k_out_of_range);
            }
            put32(out, elements.empty() ? 0 : 1);  // dimensions
            put32(out, has_null ? 1 : 0);
            put32(out, type.element_oid);
            if (!elements.empty()) {
                put32(out, static_cast<std::uint32_t>(elements.size()));
                put32(out, 1);  // lower bound
            }
            for (std::size_t i = 0; i < elements.size(); ++i) {
                if (elements[i].kind() == Value::Kind::array) {
                    value_error(what, "only one-dimensional arrays are supported",
                                k_datatype_mismatch);
                }
                const std::string element_what = std::string(what) + (what.empty() ? "" : ", ") +
                                                 "element " + std::to_string(i + 1);
                encode_field(elements[i], element, out, element_what);
            }
            return;
        }
    }
    mismatch(value, type, what);
}

constexpr char k_header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

}  // namespace

// -------------------------------------------------------------------------------------------------

Numeric::Numeric(std::string_view text) {
    Decimal d;
    switch (parse_decimal(text, d)) {
        case DecimalParse::ok:
            break;
        case DecimalParse::syntax:
            throw Error("invalid input syntax for type numeric: \"" + std::string(text) + "\"",
                        k_invalid_text, "", "", true);
        case DecimalParse::overflow:
            throw Error("value overflows numeric format", k_out_of_range, "", "", true);
    }
    m_text = decimal_text(d);
}

Numeric Numeric::from_digits(std::string_view unscaled_digits, int scale) {
    std::string_view digits = unscaled_digits;
    std::string sign;
    if (!digits.empty() && (digits.front() == '-' || digits.front() == '+')) {
        sign = digits.front() == '-' ? "-" : "";
        digits.remove_prefix(1);
    }
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw Error("invalid numeric digits: \"" + std::string(unscaled_digits) + "\"",
                    k_invalid_text, "", "", true);
    }
    // Past these no value is in numeric's range (131072 digits before the point, 16383 after),
    // and the exponent text below would not be read.
    if (scale > 1000000 || scale < -1000000) {
        throw Error("numeric scale " + std::to_string(scale) + " is out of range", k_out_of_range,
                    "", "", true);
    }
    return Numeric(sign + std::string(digits) + "e" + std::to_string(-scale));
}

Date Date::from_ymd(int year, int month, int day) {
    return Date{checked_date_days(pg_days(year, month, day), ymd_text(year, month, day))};
}

Date Date::parse(std::string_view text) {
    Cursor c{text};
    const std::int64_t days = parse_date_part(c, "date");
    if (!c.done()) {
        bad_datetime("date", text);
    }
    return Date{checked_date_days(days, text)};
}

Time Time::from_hms(int hour, int minute, int second, int microsecond) {
    return Time{time_usecs(hour, minute, second, microsecond)};
}

Time Time::parse(std::string_view text) {
    Cursor c{text};
    const std::int64_t us = parse_time_part(c, "time");
    if (!c.done()) {
        bad_datetime("time", text);
    }
    return Time{us};
}

Timestamp Timestamp::from_parts(int year, int month, int day, int hour, int minute, int second,
                                int microsecond) {
    return Timestamp{checked_timestamp_micros(pg_days(year, month, day),
                                              time_usecs(hour, minute, second, microsecond), 0,
                                              ymd_text(year, month, day))};
}

namespace {
// Unix microseconds to the server's epoch; below the range the subtraction would overflow.
std::int64_t from_unix(std::int64_t micros) {
    if (micros < k_min_timestamp + k_unix_to_pg_usecs) {
        value_error("", "timestamp out of range: " + std::to_string(micros) + " us since 1970",
                    k_datetime_overflow);
    }
    return micros - k_unix_to_pg_usecs;
}
}  // namespace

Timestamp Timestamp::from_unix_micros(std::int64_t micros) {
    return Timestamp{from_unix(micros)};
}

namespace {
std::int64_t parse_timestamp_text(std::string_view text, std::string_view kind, bool with_zone) {
    Cursor c{text};
    const std::int64_t days = parse_date_part(c, kind);
    if (!c.accept(' ') && !c.accept('T')) {
        bad_datetime(kind, text);
    }
    const std::int64_t time_us = parse_time_part(c, kind);
    std::int64_t offset_seconds = 0;
    if (with_zone && !c.done()) {
        if (c.accept('Z') || c.accept('z')) {
            // UTC
        } else {
            const char sign = c.peek();
            if (sign != '+' && sign != '-') {
                bad_datetime(kind, text);
            }
            ++c.pos;
            std::int64_t hours = 0;
            std::int64_t minutes = 0;
            if (!c.number(2, 2, hours)) {
                bad_datetime(kind, text);
            }
            c.accept(':');
            if (!c.done() && !c.number(2, 2, minutes)) {
                bad_datetime(kind, text);
            }
            if (hours > 15 || minutes > 59) {
                bad_datetime(kind, text);
            }
            const std::int64_t offset = hours * 3600 + minutes * 60;
            offset_seconds = sign == '+' ? offset : -offset;  // local = UTC + offset
        }
    }
    if (!c.done()) {
        bad_datetime(kind, text);
    }
    return checked_timestamp_micros(days, time_us, offset_seconds, text);
}
}  // namespace

Timestamp Timestamp::parse(std::string_view text) {
    return Timestamp{parse_timestamp_text(text, "timestamp", false)};
}

TimestampTz TimestampTz::from_parts(int year, int month, int day, int hour, int minute, int second,
                                    int microsecond, int utc_offset_seconds) {
    return TimestampTz{checked_timestamp_micros(pg_days(year, month, day),
                                                time_usecs(hour, minute, second, microsecond),
                                                utc_offset_seconds, ymd_text(year, month, day))};
}

TimestampTz TimestampTz::from_unix_micros(std::int64_t micros) {
    return TimestampTz{from_unix(micros)};
}

TimestampTz TimestampTz::parse(std::string_view text) {
    return TimestampTz{parse_timestamp_text(text, "timestamp with time zone", true)};
}

Uuid Uuid::parse(std::string_view text) {
    std::string_view body = text;
    if (body.size() >= 2 && body.front() == '{' && body.back() == '}') {
        body = body.substr(1, body.size() - 2);
    }
    Uuid uuid;
    std::size_t nibbles = 0;
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        int v = -1;
        if (c >= '0' && c <= '9') {
            v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v = c - 'A' + 10;
        } else if (c == '-' && nibbles % 4 == 0 && nibbles > 0 && nibbles < 32 &&
                   i + 1 < body.size() && body[i + 1] != '-') {
            continue;
        }
        if (v < 0 || nibbles >= 32) {
            throw Error("invalid input syntax for type uuid: \"" + std::string(text) + "\"",
                        k_invalid_text, "", "", true);
        }
        uuid.bytes[nibbles / 2] =
            static_cast<std::uint8_t>(uuid.bytes[nibbles / 2] | (nibbles % 2 == 0 ? v << 4 : v));
        ++nibbles;
    }
    if (nibbles != 32) {
        throw Error("invalid input syntax for type uuid: \"" + std::string(text) + "\"",
                    k_invalid_text, "", "", true);
    }
    return uuid;
}

bool Array::operator==(const Array& other) const {
    return elements == other.elements;
}

const char* to_string(Value::Kind kind) noexcept {
    switch (kind) {
        case Value::Kind::null:
            return "NULL";
        case Value::Kind::boolean:
            return "boolean";
        case Value::Kind::integer:
            return "integer";
        case Value::Kind::floating:
            return "floating-point";
        case Value::Kind::text:
            return "text";
        case Value::Kind::numeric:
            return "numeric";
        case Value::Kind::date:
            return "date";
        case Value::Kind::time:
            return "time";
        case Value::Kind::timestamp:
            return "timestamp";
        case Value::Kind::timestamptz:
            return "timestamptz";
        case Value::Kind::interval:
            return "interval";
        case Value::Kind::uuid:
            return "uuid";
        case Value::Kind::bytes:
            return "bytea";
        case Value::Kind::json:
            return "json";
        case Value::Kind::array:
            return "array";
    }
    return "?";
}

bool ColumnType::from_oid(std::uint32_t oid, std::int32_t typmod, std::uint32_t element_oid,
                          std::string name, ColumnType& out) {
    auto scalar = [](std::uint32_t o, TypeKind& kind) {
        switch (o) {
            case 16:
                kind = TypeKind::boolean;
                return true;
            case 17:
                kind = TypeKind::bytea;
                return true;
            case 20:
                kind = TypeKind::int8;
                return true;
            case 21:
                kind = TypeKind::int2;
                return true;
            case 23:
                kind = TypeKind::int4;
                return true;
            case 25:
                kind = TypeKind::text;
                return true;
            case 114:
                kind = TypeKind::json;
                return true;
            case 700:
                kind = TypeKind::float4;
                return true;
            case 701:
                kind = TypeKind::float8;
                return true;
            case 1042:
                kind = TypeKind::bpchar;
                return true;
            case 1043:
                kind = TypeKind::varchar;
                return true;
            case 1082:
                kind = TypeKind::date;
                return true;
            case 1083:
                kind = TypeKind::time;
                return true;
            case 1114:
                kind = TypeKind::timestamp;
                return true;
            case 1184:
                kind = TypeKind::timestamptz;
                return true;
            case 1186:
                kind = TypeKind::interval;
                return true;
            case 1700:
                kind = TypeKind::numeric;
                return true;
            case 2950:
                kind = TypeKind::uuid;
                return true;
            case 3802:
                kind = TypeKind::jsonb;
                return true;
            default:
                return false;
        }
    };
    ColumnType type;
    type.oid = oid;
    type.typmod = typmod;
    type.name = std::move(name);
    if (scalar(oid, type.kind)) {
        out = std::move(type);
        return true;
    }
    if (element_oid != 0 && scalar(element_oid, type.element_kind)) {
        type.kind = TypeKind::array;
        type.element_oid = element_oid;
        out = std::move(type);
        return true;
    }
    return false;
}

void encode_field(const Value& value, const ColumnType& type, std::string& out,
                  std::string_view what) {
    if (value.is_null()) {
        put32(out, 0xFFFFFFFFu);
        return;
    }
    const std::size_t length_at = out.size();
    put32(out, 0);
    encode_payload(value, type, out, what);
    const std::size_t length = out.size() - length_at - 4;
    if (length > static_cast<std::size_t>(INT32_MAX)) {
        value_error(what, "value too large for one field", k_out_of_range);
    }
    for (int i = 0; i < 4; ++i) {
        out[length_at + static_cast<std::size_t>(i)] =
            static_cast<char>((length >> (24 - 8 * i)) & 0xff);
    }
}

namespace {

// interval typmods: the fields restriction in the high half (0x7FFF: none), the precision in
// the low (0xFFFF: none).
constexpr std::int32_t k_interval_full_range = 0x7FFF;

bool is_text_kind(TypeKind kind) {
    return kind == TypeKind::text || kind == TypeKind::varchar || kind == TypeKind::bpchar;
}

}  // namespace

bool key_bytes_supported(const ColumnType& type) noexcept {
    const auto canonical = [](TypeKind kind) {
        return kind != TypeKind::json && kind != TypeKind::jsonb;
    };
    const TypeKind kind = type.kind == TypeKind::array ? type.element_kind : type.kind;
    if (!type.deterministic_collation && is_text_kind(kind)) {
        return false;
    }
    if (kind == TypeKind::interval && type.typmod >= 0 &&
        ((type.typmod >> 16) & 0x7FFF) != k_interval_full_range) {
        return false;  // interval day, interval hour to minute...: fields are truncated
    }
    if (type.kind == TypeKind::array) {
        switch (type.element_kind) {
            case TypeKind::numeric:
            case TypeKind::float4:
            case TypeKind::float8:
            case TypeKind::interval:
            case TypeKind::bpchar:
                return false;  // elements compare like the scalars: their bytes do not
            default:
                // Times and timestamps included: the encoder rounds each element to the
                // column's precision, as the server's array input does.
                return canonical(type.element_kind);
        }
    }
    return canonical(type.kind);
}

void append_key_bytes(const Value& value, const ColumnType& type, std::string& out) {
    std::string part;
    if (value.is_null()) {
        put32(out, 0xFFFFFFFFu);  // distinct from every length-prefixed value below
        return;
    }
    switch (type.kind) {
        case TypeKind::numeric: {
            Decimal d = numeric_of(value, type, "");
            // 1.0 = 1.00: drop trailing fraction zeros.
            while (!d.fraction.empty() && d.fraction.back() == '0') {
                d.fraction.pop_back();
            }
            part = decimal_text(d);
            break;
        }
        case TypeKind::float4: {
            float f = float4_of(value, type, "");
            if (f == 0.0f) {
                f = 0.0f;
            }
            if (std::isnan(f)) {
                f = std::numeric_limits<float>::quiet_NaN();
            }
            put32(part, float_bits(f));
            break;
        }
        case TypeKind::float8: {
            double f = floating_of(value, type, "");
            if (f == 0.0) {
                f = 0.0;
            }
            if (std::isnan(f)) {
                f = std::numeric_limits<double>::quiet_NaN();
            }
            put64(part, double_bits(f));
            break;
        }
        case TypeKind::interval: {
            // The server compares intervals by their span, a month being 30 days and a day 24
            // hours: '1 day' = '24 hours', '1 mon' = '30 days'.
            std::string payload;
            encode_payload(value, type, payload, "");
            const auto be = [&](std::size_t at, int bytes) {
                std::uint64_t v = 0;
                for (int i = 0; i < bytes; ++i) {
                    v = (v << 8) |
                        static_cast<unsigned char>(payload[at + static_cast<std::size_t>(i)]);
                }
                return v;
            };
            const auto micros = static_cast<std::int64_t>(be(0, 8));  // rounded by the encoder
            const auto days = static_cast<std::int32_t>(static_cast<std::uint32_t>(be(8, 4)));
            const auto months = static_cast<std::int32_t>(static_cast<std::uint32_t>(be(12, 4)));
            const __int128 span =
                (static_cast<__int128>(months) * 30 + days) * static_cast<__int128>(86400000000LL) +
                micros;
            const auto bits = static_cast<unsigned __int128>(span);
            put64(part, static_cast<std::uint64_t>(bits >> 64));
            put64(part, static_cast<std::uint64_t>(bits));
            break;
        }
        case TypeKind::bpchar: {
            std::string_view text = checked_text(std::get<std::string>(value.storage()), type, "");
            while (!text.empty() && text.back() == ' ') {
                text.remove_suffix(1);
            }
            part = std::string(text);
            break;
        }
        default:
            // Times and timestamps included: the encoder rounds them to the column's precision
            // (timestamp(0): 12:00:00.4 and 12:00:00.3 are one key, as the server stores them).
            encode_payload(value, type, part, "");
            break;
    }
    put32(out, static_cast<std::uint32_t>(part.size()));
    out += part;
}

std::string_view binary_copy_header() noexcept {
    return std::string_view(k_header, 19);
}

std::string_view binary_copy_trailer() noexcept {
    return std::string_view("\xff\xff", 2);
}

}  // namespace pg_ingest
