// parse_text_value for date, time, timestamp and timestamptz: the ISO forms of the server's
// date_in/time_in/timestamp_in (DateStyle ISO), UTC offsets, BC, infinity and epoch.
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

namespace {

constexpr const char* k_tz_displacement = "22009";

struct DateTime {
    enum class Special { none, pos_infinity, neg_infinity } special = Special::none;
    bool has_date = false;
    bool has_time = false;
    std::int64_t days = 0;     // since 2000-01-01
    std::int64_t time_us = 0;  // since midnight, may be 24:00:00 (or more after rounding)
    std::optional<std::int64_t> offset_seconds;  // east of Greenwich
    bool iso_t = false;            // the time follows a date and a 'T' ("2024-01-01T10:00")
    std::int64_t clock_hours = 0;  // the time's hour field as written (before AM/PM)
};

// HH:MM[:SS[.fraction]] -> microseconds; fractions beyond microseconds are rounded (rint), as
// the server rounds them. Checks the field ranges (seconds may be 60, a leap second).
bool scan_time(Scanner& sc, std::int64_t& micros, bool& field_overflow, std::int64_t& hours) {
    const auto clock = sc.clock(2, 2);
    if (!clock) {
        return false;
    }
    hours = clock->hours;
    std::int64_t fraction_us = 0;
    if (clock->with_seconds) {  // a fraction only after seconds
        fraction_us = static_cast<std::int64_t>(std::rint(sc.fraction() * k_usecs_per_second));
    }
    if (clock->hours > 24 || clock->minutes > 59 || clock->seconds > 60) {
        field_overflow = true;
    }
    micros = ((clock->hours * 60 + clock->minutes) * 60 + clock->seconds) * k_usecs_per_second +
             fraction_us;
    if (micros > k_usecs_per_day) {
        field_overflow = true;
    }
    return true;
}

// A number in a UTC offset, read as strtol reads one (the server's strtoint): an optional '-'
// and the digits after it, none read when there are no digits. Saturates; `overflow` then.
std::int64_t offset_number(std::string_view field, std::size_t& i, bool& overflow) {
    std::size_t at = i;
    const bool negative = at < field.size() && field[at] == '-';
    if (negative) {
        ++at;
    }
    if (at >= field.size() || !is_digit(field[at])) {
        return 0;
    }
    std::int64_t value = 0;
    for (; at < field.size() && is_digit(field[at]); ++at) {
        value = value * 10 + (field[at] - '0');
        if (value > INT32_MAX) {
            overflow = true;
            value = INT32_MAX;
        }
    }
    i = at;
    return negative ? -value : value;
}

enum class Offset { ok, bad_syntax, out_of_range };

// A numeric UTC offset as the server reads one (ParseDateTime, then DecodeTimezone): the sign,
// blanks allowed after it, then the run of digits, ':', '.' and '-' that makes its field. That
// is hours, then :minutes and :seconds (any number of digits each), or three or more digits
// with nothing after them as H[H]MM ("+530" is +05:30; "+053000" is 530 hours). Hours above 15,
// minutes or seconds outside 0..59: out_of_range (22009, checked first); anything left over in
// the field: bad_syntax. `offset` in seconds east of Greenwich.
Offset scan_offset(Scanner& sc, std::int64_t& offset) {
    const bool west = sc.peek() == '-';
    ++sc.pos;  // the sign
    sc.skip_blanks();
    if (!is_digit(sc.peek())) {
        return Offset::bad_syntax;
    }
    const std::size_t start = sc.pos;
    while (is_digit(sc.peek()) || sc.peek() == ':' || sc.peek() == '.' || sc.peek() == '-') {
        ++sc.pos;
    }
    const std::string_view field = sc.s.substr(start, sc.pos - start);
    std::size_t i = 0;
    bool overflow = false;
    std::int64_t hours = offset_number(field, i, overflow);
    std::int64_t minutes = 0;
    std::int64_t seconds = 0;
    if (i < field.size() && field[i] == ':') {
        ++i;
        minutes = offset_number(field, i, overflow);
        if (i < field.size() && field[i] == ':') {
            ++i;
            seconds = offset_number(field, i, overflow);
        }
    } else if (i == field.size() && field.size() >= 3) {
        minutes = hours % 100;
        hours /= 100;
    }
    if (overflow || hours > 15 || minutes < 0 || minutes > 59 || seconds < 0 || seconds > 59) {
        return Offset::out_of_range;
    }
    if (i != field.size()) {
        return Offset::bad_syntax;
    }
    offset = (hours * 3600 + minutes * 60 + seconds) * (west ? -1 : 1);
    return Offset::ok;
}

// The ISO forms the server prints (DateStyle ISO) and a few spellings around them. `type_name`
// is used for syntax errors; `want_date` says whether a date part is required.
DateTime parse_datetime(const Context& cx, const char* type_name, bool want_date) {
    DateTime dt;
    const std::string_view s = trimmed(cx.text);
    const std::string l = lowered(s);
    if (l == "infinity") {  // "+infinity" is refused by the server's date/time input
        dt.special = DateTime::Special::pos_infinity;
        return dt;
    }
    if (l == "-infinity") {
        dt.special = DateTime::Special::neg_infinity;
        return dt;
    }
    if (l == "epoch") {
        dt.has_date = true;
        dt.days = -k_unix_to_pg_days;  // 1970-01-01
        dt.offset_seconds = 0;
        return dt;
    }
    Scanner sc{s};
    bool field_overflow = false;
    std::int64_t year = 0;
    std::int64_t month = 0;
    std::int64_t day = 0;
    // A date part is digits followed by '-' (a time part by ':').
    std::size_t lead = 0;
    bool iso_t = false;  // "2024-01-01T10:00": the time follows the T directly
    while (is_digit(sc.peek(lead))) {
        ++lead;
    }
    if (lead > 0 && sc.peek(lead) == '-') {
        std::size_t year_digits = 0;
        if (!sc.digits(4, 9, year, &year_digits) || sc.peek() != '-') {
            cx.syntax(type_name, k_invalid_datetime);
        }
        ++sc.pos;
        if (!sc.digits(1, 2, month) || sc.peek() != '-') {
            cx.syntax(type_name, k_invalid_datetime);
        }
        ++sc.pos;
        if (!sc.digits(1, 2, day)) {
            cx.syntax(type_name, k_invalid_datetime);
        }
        dt.has_date = true;
        if (sc.peek() == 'T' || sc.peek() == 't') {
            ++sc.pos;
            if (!is_digit(sc.peek())) {
                cx.syntax(type_name, k_invalid_datetime);
            }
            iso_t = true;
            dt.iso_t = true;
        }
    } else if (want_date) {
        cx.syntax(type_name, k_invalid_datetime);
    }
    bool bc = false;
    bool era_given = false;
    enum class Meridiem { none, am, pm } meridiem = Meridiem::none;
    while (true) {
        const std::size_t before = sc.pos;
        sc.skip_blanks();
        if (sc.done()) {
            break;
        }
        const char c = sc.peek();
        if (is_digit(c) && !dt.has_time) {
            if (dt.has_date && sc.pos == before && !iso_t) {
                cx.syntax(type_name, k_invalid_datetime);  // "2024-01-0110:00"
            }
            if (!scan_time(sc, dt.time_us, field_overflow, dt.clock_hours)) {
                cx.syntax(type_name, k_invalid_datetime);
            }
            dt.has_time = true;
        } else if ((c == '+' || c == '-') && !dt.offset_seconds && (dt.has_time || dt.has_date)) {
            if (c == '-' && !dt.has_time && sc.pos == before) {
                cx.syntax(type_name, k_invalid_datetime);  // "2024-01-01-05": one date field
            }
            std::int64_t offset = 0;
            switch (scan_offset(sc, offset)) {
                case Offset::ok:
                    break;
                case Offset::bad_syntax:
                    cx.syntax(type_name, k_invalid_datetime);
                case Offset::out_of_range:  // at once, as the server stops at this field
                    cx.fail_value("time zone displacement out of range", k_tz_displacement);
            }
            dt.offset_seconds = offset;
        } else if (is_alpha(c)) {
            std::size_t end = sc.pos;
            while (end < s.size() && (is_alpha(s[end]) || s[end] == '/' || s[end] == '_')) {
                ++end;
            }
            const std::string word = lowered(s.substr(sc.pos, end - sc.pos));
            // A word run into a sign ("PM-08", "UTC+3") is one POSIX time zone to the server,
            // whose offset counts west and which drops a meridiem: refused, not guessed at.
            if (end < s.size() && (s[end] == '+' || s[end] == '-')) {
                cx.fail_value(std::string("invalid input syntax for type ") + type_name +
                                  " (a word followed at once by a sign is a POSIX time zone, "
                                  "which the client does not resolve: put a blank before the "
                                  "UTC offset)",
                              k_invalid_datetime);
            }
            if ((word == "bc" || word == "ad") && !era_given) {
                era_given = true;
                bc = word == "bc";
            } else if ((word == "am" || word == "pm") && meridiem == Meridiem::none) {
                meridiem = word == "am" ? Meridiem::am : Meridiem::pm;
            } else if ((word == "z" || word == "utc" || word == "gmt" || word == "zulu") &&
                       !dt.offset_seconds) {
                dt.offset_seconds = 0;
            } else if (dt.has_time) {
                cx.fail_value(std::string("invalid input syntax for type ") + type_name +
                                  " (time zone names are not resolved by the client: give a "
                                  "UTC offset such as +02:00)",
                              k_invalid_datetime);
            } else {
                cx.syntax(type_name, k_invalid_datetime);
            }
            sc.pos = end;
        } else {
            cx.syntax(type_name, k_invalid_datetime);
        }
    }
    if (!dt.has_date && !dt.has_time) {
        cx.syntax(type_name, k_invalid_datetime);
    }
    // AM/PM, as the server applies it to the hour field as written (a fraction rounded up to the
    // next second does not count): above 12 is out of range, 12 AM is 0, PM adds 12 but to 12.
    // Only with a time (the server also takes it alone, for the hour 0: not accepted here).
    if (meridiem != Meridiem::none) {
        if (!dt.has_time) {
            cx.syntax(type_name, k_invalid_datetime);
        }
        constexpr std::int64_t k_half_day = 12 * 3600 * k_usecs_per_second;
        if (dt.clock_hours > 12) {
            field_overflow = true;
        } else if (meridiem == Meridiem::am && dt.clock_hours == 12) {
            dt.time_us -= k_half_day;
        } else if (meridiem == Meridiem::pm && dt.clock_hours != 12) {
            dt.time_us += k_half_day;
        }
    }
    if (dt.has_date) {
        if (bc) {
            if (year == 0) {
                field_overflow = true;
            }
            year = 1 - year;
        } else if (year == 0) {
            field_overflow = true;
        }
        if (month < 1 || month > 12 || day < 1 ||
            (month >= 1 && month <= 12 && day > days_in_month(year, static_cast<int>(month)))) {
            field_overflow = true;
        }
        if (!field_overflow) {
            dt.days = days_since_2000(year, static_cast<int>(month), static_cast<int>(day));
        }
    } else if (era_given) {
        cx.syntax(type_name, k_invalid_datetime);
    }
    if (field_overflow) {
        cx.fail_value("date/time field value out of range", k_datetime_overflow);
    }
    return dt;
}

}  // namespace

Value parse_date(const Context& cx) {
    const DateTime dt = parse_datetime(cx, "date", true);
    if (dt.special == DateTime::Special::pos_infinity) {
        return Value(Date::infinity());
    }
    if (dt.special == DateTime::Special::neg_infinity) {
        return Value(Date::minus_infinity());
    }
    if (dt.days < k_min_date_days || dt.days >= k_end_date_days) {
        cx.fail_value("date out of range", k_datetime_overflow);
    }
    return Value(Date{static_cast<std::int32_t>(dt.days)});
}

Value parse_time(const Context& cx) {
    const DateTime dt = parse_datetime(cx, "time without time zone", false);
    // The server's time input takes a date before the time only with a blank between them.
    if (dt.special != DateTime::Special::none || !dt.has_time || dt.iso_t) {
        cx.syntax("time without time zone", k_invalid_datetime);
    }
    return Value(Time{dt.time_us});
}

Value parse_timestamp(const Context& cx, bool with_zone, const TextValueOptions& options) {
    const char* name = with_zone ? "timestamp with time zone" : "timestamp without time zone";
    const DateTime dt = parse_datetime(cx, name, true);
    std::int64_t micros = 0;
    if (dt.special == DateTime::Special::pos_infinity) {
        micros = INT64_MAX;
    } else if (dt.special == DateTime::Special::neg_infinity) {
        micros = INT64_MIN;
    } else {
        // Far outside the range the multiplication could overflow: check the days first.
        if (dt.days < k_min_date_days - 1 || dt.days > 106751991LL - 2) {
            cx.fail_value("timestamp out of range", k_datetime_overflow);
        }
        micros = dt.days * k_usecs_per_day + dt.time_us;
        if (with_zone) {
            if (dt.offset_seconds) {
                micros -= *dt.offset_seconds * k_usecs_per_second;
            } else if (options.local_to_utc) {
                micros = options.local_to_utc(micros);
            }
        }
        if (micros < k_min_timestamp || micros >= k_end_timestamp) {
            cx.fail_value("timestamp out of range", k_datetime_overflow);
        }
    }
    if (with_zone) {
        return Value(TimestampTz{micros});
    }
    return Value(Timestamp{micros});
}

}  // namespace pg_ingest::detail::text_input
