// parse_text_value for interval: a reading of the text step by step as PostgreSQL 15's
// interval_in reads it, so that what a COPY would store, the typed writer stores, to the
// microsecond. The steps are the server's:
//  - the text is split into fields as ParseDateTime splits it (blanks and other punctuation
//    delimit, "1h30m" is four fields, a sign soaks up the blanks after it, at most 25 fields in a
//    256-byte work buffer);
//  - the fields are read right to left as DecodeInterval reads them: a number takes the unit to
//    its right (or, rightmost, the column's smallest field), a clock field, years-months;
//  - each unit adds into separate year, month, day (int32) and microsecond (int64) counters,
//    checked for overflow at every step, fractions spilled to the next smaller field with the
//    server's double arithmetic (truncate, then round the rest);
//  - should that fail as a bad format, the text is read as ISO 8601 (P...), whose numbers are
//    doubles as strtod reads them, as DecodeISO8601Interval reads it.
// A difference is a value stored other than COPY stores it; the differential test
// (tests/client/integration/text_value_differential_test.cpp) compares the two on random text.
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "interval_counters.hpp"
#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input {

namespace {

using namespace interval_input;

constexpr const char* k_interval_field_overflow = "22015";

// C's <ctype.h> classes for the server's C/UTF-8 locales (bytes above 0x7F are in none).
bool c_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}
bool c_alnum(char c) {
    return is_digit(c) || is_alpha(c);
}
bool c_punct(char c) {
    return c > ' ' && c < 0x7F && !c_alnum(c);
}

// strtol in base 10 over a NUL-free field: value, where it stopped, and whether it overflowed
// (ERANGE; the value is then clamped as strtol clamps it).
struct Parsed {
    std::int64_t value = 0;
    std::size_t end = 0;
    bool range_error = false;
};

Parsed parse_long(const std::string& s, std::size_t at) {
    Parsed p;
    std::size_t i = at;
    while (i < s.size() && c_space(s[i])) {
        ++i;
    }
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        negative = s[i] == '-';
        ++i;
    }
    const std::size_t digits_start = i;
    // Accumulated negatively so that INT64_MIN itself fits.
    std::int64_t v = 0;
    while (i < s.size() && is_digit(s[i])) {
        const int d = s[i] - '0';
        if (!p.range_error &&
            (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, d, &v))) {
            p.range_error = true;
        }
        ++i;
    }
    if (i == digits_start) {
        p.end = at;  // no number: strtol leaves endptr at the start
        return p;
    }
    p.end = i;
    if (p.range_error) {
        p.value = negative ? INT64_MIN : INT64_MAX;
    } else if (negative) {
        p.value = v;
    } else if (v == INT64_MIN) {
        p.range_error = true;
        p.value = INT64_MAX;
    } else {
        p.value = -v;
    }
    return p;
}

// strtoint: strtol with an int range.
Parsed parse_int(const std::string& s, std::size_t at) {
    Parsed p = parse_long(s, at);
    if (p.value < INT32_MIN || p.value > INT32_MAX) {
        p.range_error = true;
    }
    return p;
}

// ParseDateTime's field kinds.
enum class FieldType { number, string, date, time, tz, special };

struct DateField {
    std::string text;
    FieldType type;
};

// Words of the server's datetktbl: after such a word a digit or '+' starts a new field ("1h30m"),
// after any other word it continues a date field ("1day2h", refused).
bool in_datetime_table(const std::string& word) {
    static const char* const k_words[] = {
        "ad",       "allballs", "am",      "apr",       "april",    "at",       "aug",
        "august",   "bc",       "d",       "dec",       "december", "dow",      "doy",
        "dst",      "epoch",    "feb",     "february",  "fri",      "friday",   "h",
        "infinity", "isodow",   "isoyear", "j",         "jan",      "january",  "jd",
        "jul",      "julian",   "july",    "jun",       "june",     "m",        "mar",
        "march",    "may",      "mm",      "mon",       "monday",   "nov",      "november",
        "now",      "oct",      "october", "on",        "pm",       "s",        "sat",
        "saturday", "sep",      "sept",    "september", "sun",      "sunday",   "t",
        "thu",      "thur",     "thurs",   "thursday",  "today",    "tomorrow", "tue",
        "tues",     "tuesday",  "wed",     "wednesday", "weds",     "y",        "yesterday"};
    const std::string key = word.substr(0, 10);
    for (const char* w : k_words) {
        if (key == w) {
            return true;
        }
    }
    return false;
}

// ParseDateTime: the fields of `text`, or bad_format.
Status split_fields(std::string_view text, std::vector<DateField>& fields) {
    constexpr std::size_t k_max_fields = 25;    // MAXDATEFIELDS
    constexpr std::size_t k_work_buffer = 256;  // interval_in's workbuf, one NUL per field
    std::size_t used = 0;
    std::size_t i = 0;
    const auto at = [&](std::size_t k) { return k < text.size() ? text[k] : '\0'; };
    while (i < text.size()) {
        const char c = text[i];
        if (c_space(c)) {
            ++i;
            continue;
        }
        // Checked before punctuation is skipped, as the server checks it: 25 fields and then a
        // ',' are refused.
        if (fields.size() >= k_max_fields) {
            return Status::bad_format;
        }
        if (!is_digit(c) && c != '.' && !is_alpha(c) && c != '+' && c != '-') {
            if (c_punct(c)) {
                ++i;  // other punctuation only delimits
                continue;
            }
            return Status::bad_format;
        }
        DateField f{"", FieldType::number};
        std::string& out = f.text;
        if (is_digit(c)) {
            out += text[i++];
            while (is_digit(at(i))) {
                out += text[i++];
            }
            if (at(i) == ':') {
                f.type = FieldType::time;
                out += text[i++];
                while (is_digit(at(i)) || at(i) == ':' || at(i) == '.') {
                    out += text[i++];
                }
            } else if (at(i) == '-' || at(i) == '/' || at(i) == '.') {
                const char delim = text[i];
                out += text[i++];
                if (is_digit(at(i))) {
                    f.type = delim == '.' ? FieldType::number : FieldType::date;
                    while (is_digit(at(i))) {
                        out += text[i++];
                    }
                    if (at(i) == delim) {
                        f.type = FieldType::date;
                        out += text[i++];
                        while (is_digit(at(i)) || at(i) == delim) {
                            out += text[i++];
                        }
                    }
                } else {
                    f.type = FieldType::date;
                    while (c_alnum(at(i)) || at(i) == delim) {
                        out += lower(text[i++]);
                    }
                }
            }
        } else if (c == '.') {
            out += text[i++];
            while (is_digit(at(i))) {
                out += text[i++];
            }
        } else if (is_alpha(c)) {
            f.type = FieldType::string;
            while (is_alpha(at(i))) {
                out += lower(text[i++]);
            }
            bool is_date = at(i) == '-' || at(i) == '/' || at(i) == '.';
            if (!is_date && (at(i) == '+' || is_digit(at(i)))) {
                is_date = !in_datetime_table(out);
            }
            if (is_date) {
                f.type = FieldType::date;
                do {
                    out += lower(text[i++]);
                } while (at(i) == '+' || at(i) == '-' || at(i) == '/' || at(i) == '_' ||
                         at(i) == '.' || at(i) == ':' || c_alnum(at(i)));
            }
        } else {  // '+' or '-'
            out += text[i++];
            while (c_space(at(i))) {
                ++i;
            }
            if (is_digit(at(i))) {
                f.type = FieldType::tz;
                out += text[i++];
                while (is_digit(at(i)) || at(i) == ':' || at(i) == '.' || at(i) == '-') {
                    out += text[i++];
                }
            } else if (is_alpha(at(i))) {
                f.type = FieldType::special;
                while (is_alpha(at(i))) {
                    out += lower(text[i++]);
                }
            } else {
                return Status::bad_format;
            }
        }
        // The server appends character by character while one byte stays free, then a NUL.
        if (used + out.size() + 1 > k_work_buffer) {
            return Status::bad_format;
        }
        used += out.size() + 1;
        fields.push_back(std::move(f));
    }
    return Status::ok;
}

// DecodeUnits over the server's deltatktbl: the DTK_* unit of a word.
enum class UnitKind {
    none,  // not a unit word
    ago,
    microsecond,
    millisecond,
    second,
    minute,
    hour,
    day,
    week,
    month,
    year,
    decade,
    century,
    millennium,
    other  // quarter, timezone...: a unit interval input cannot apply to a number
};

UnitKind unit_of(const std::string& word) {
    struct Entry {
        const char* token;
        UnitKind kind;
    };
    static const Entry k_units[] = {
        {"ago", UnitKind::ago},
        {"c", UnitKind::century},
        {"cent", UnitKind::century},
        {"centuries", UnitKind::century},
        {"century", UnitKind::century},
        {"d", UnitKind::day},
        {"day", UnitKind::day},
        {"days", UnitKind::day},
        {"dec", UnitKind::decade},
        {"decade", UnitKind::decade},
        {"decades", UnitKind::decade},
        {"decs", UnitKind::decade},
        {"h", UnitKind::hour},
        {"hour", UnitKind::hour},
        {"hours", UnitKind::hour},
        {"hr", UnitKind::hour},
        {"hrs", UnitKind::hour},
        {"m", UnitKind::minute},
        {"microsecon", UnitKind::microsecond},
        {"mil", UnitKind::millennium},
        {"millennia", UnitKind::millennium},
        {"millennium", UnitKind::millennium},
        {"millisecon", UnitKind::millisecond},
        {"mils", UnitKind::millennium},
        {"min", UnitKind::minute},
        {"mins", UnitKind::minute},
        {"minute", UnitKind::minute},
        {"minutes", UnitKind::minute},
        {"mon", UnitKind::month},
        {"mons", UnitKind::month},
        {"month", UnitKind::month},
        {"months", UnitKind::month},
        {"ms", UnitKind::millisecond},
        {"msec", UnitKind::millisecond},
        {"msecond", UnitKind::millisecond},
        {"mseconds", UnitKind::millisecond},
        {"msecs", UnitKind::millisecond},
        {"qtr", UnitKind::other},
        {"quarter", UnitKind::other},
        {"s", UnitKind::second},
        {"sec", UnitKind::second},
        {"second", UnitKind::second},
        {"seconds", UnitKind::second},
        {"secs", UnitKind::second},
        {"timezone", UnitKind::other},
        {"timezone_h", UnitKind::other},
        {"timezone_m", UnitKind::other},
        {"us", UnitKind::microsecond},
        {"usec", UnitKind::microsecond},
        {"usecond", UnitKind::microsecond},
        {"useconds", UnitKind::microsecond},
        {"usecs", UnitKind::microsecond},
        {"w", UnitKind::week},
        {"week", UnitKind::week},
        {"weeks", UnitKind::week},
        {"y", UnitKind::year},
        {"year", UnitKind::year},
        {"years", UnitKind::year},
        {"yr", UnitKind::year},
        {"yrs", UnitKind::year},
    };
    // The server compares the first 10 characters (TOKMAXLEN): "microseconds" is "microsecon".
    const std::string key = word.substr(0, 10);
    for (const Entry& e : k_units) {
        if (key == e.token) {
            return e.kind;
        }
    }
    return UnitKind::none;
}

// DecodeInterval's fmask bits.
constexpr unsigned k_bit_microsecond = 1U << 0;
constexpr unsigned k_bit_millisecond = 1U << 1;
constexpr unsigned k_bit_second = 1U << 2;
constexpr unsigned k_bit_minute = 1U << 3;
constexpr unsigned k_bit_hour = 1U << 4;
constexpr unsigned k_bit_day = 1U << 5;
constexpr unsigned k_bit_week = 1U << 6;
constexpr unsigned k_bit_month = 1U << 7;
constexpr unsigned k_bit_year = 1U << 8;
constexpr unsigned k_bit_decade = 1U << 9;
constexpr unsigned k_bit_century = 1U << 10;
constexpr unsigned k_bit_millennium = 1U << 11;
constexpr unsigned k_bits_all_seconds = k_bit_second | k_bit_millisecond | k_bit_microsecond;
constexpr unsigned k_bits_clock = k_bit_hour | k_bit_minute | k_bits_all_seconds;

// interval(typmod) fields, as the server's INTERVAL_MASK bits of INTERVAL_RANGE(typmod).
constexpr unsigned k_range_month = 1U << 1;
constexpr unsigned k_range_year = 1U << 2;
constexpr unsigned k_range_day = 1U << 3;
constexpr unsigned k_range_hour = 1U << 10;
constexpr unsigned k_range_minute = 1U << 11;
constexpr unsigned k_range_second = 1U << 12;

unsigned range_of(std::int32_t typmod) {
    return typmod < 0 ? 0x7FFFU : (static_cast<unsigned>(typmod) >> 16) & 0x7FFFU;
}

// The unit of the rightmost number when no unit follows it: the column's smallest field
// ('5' is 5 years in an interval year column), seconds for a plain interval.
UnitKind bare_number_unit(unsigned range) {
    switch (range) {
        case k_range_year:
            return UnitKind::year;
        case k_range_month:
        case k_range_year | k_range_month:
            return UnitKind::month;
        case k_range_day:
            return UnitKind::day;
        case k_range_hour:
        case k_range_day | k_range_hour:
            return UnitKind::hour;
        case k_range_minute:
        case k_range_hour | k_range_minute:
        case k_range_day | k_range_hour | k_range_minute:
            return UnitKind::minute;
        default:
            return UnitKind::second;
    }
}

// DecodeTimeForInterval: "H:M", "H:M:S[.f]", "M:S.f" (and "M:S" for minute to second) as
// microseconds, assigned to itm.usec; the fields it fills in `mask`.
Status decode_clock(const std::string& s, unsigned range, unsigned& mask, ItmIn& itm) {
    mask = k_bits_clock;
    const Parsed hour = parse_long(s, 0);
    if (hour.range_error) {
        return Status::field_overflow;
    }
    if (hour.end >= s.size() || s[hour.end] != ':') {
        return Status::bad_format;
    }
    std::int64_t hours = hour.value;
    const Parsed minute = parse_int(s, hour.end + 1);
    if (minute.range_error) {
        return Status::field_overflow;
    }
    std::int64_t minutes = minute.value;
    std::int64_t seconds = 0;
    double fsec = 0;
    std::size_t at = minute.end;
    // ParseFractionalSecond (through ParseFraction in 15.x: "." alone is 0): the whole rest a
    // fraction, rounded to microseconds (half to even).
    const auto fraction = [&](std::size_t from) {
        if (from + 1 == s.size()) {
            fsec = 0;
            return true;
        }
        const ParsedDouble f = parse_double(s, from);
        if (f.end != s.size() || f.range_error) {
            return false;
        }
        fsec = std::rint(f.value * 1000000);
        return true;
    };
    const auto minutes_seconds = [&] {
        if (hours > INT32_MAX || hours < INT32_MIN) {
            return false;
        }
        seconds = minutes;
        minutes = hours;
        hours = 0;
        return true;
    };
    if (at >= s.size()) {
        if (range == (k_range_minute | k_range_second) && !minutes_seconds()) {
            return Status::field_overflow;
        }
    } else if (s[at] == '.') {
        if (!fraction(at)) {
            return Status::bad_format;
        }
        if (!minutes_seconds()) {
            return Status::field_overflow;
        }
    } else if (s[at] == ':') {
        const Parsed second = parse_int(s, at + 1);
        if (second.range_error) {
            return Status::field_overflow;
        }
        seconds = second.value;
        at = second.end;
        if (at < s.size() && s[at] == '.') {
            if (!fraction(at)) {
                return Status::bad_format;
            }
        } else if (at < s.size()) {
            return Status::bad_format;
        }
    } else {
        return Status::bad_format;
    }
    if (hours < 0 || minutes < 0 || minutes > 59 || seconds < 0 || seconds > 60 || fsec < 0 ||
        fsec > 1000000) {
        return Status::field_overflow;
    }
    itm.usec = static_cast<std::int64_t>(fsec);
    if (!multiply_add(hours, k_usecs_per_hour, itm.usec) ||
        !multiply_add(minutes, k_usecs_per_minute, itm.usec) ||
        !multiply_add(seconds, k_usecs_per_second, itm.usec)) {
        return Status::field_overflow;
    }
    return Status::ok;
}

// ParseFraction: a field's ".digits" as a double ("." alone is 0).
bool parse_fraction(const std::string& s, std::size_t at, double& out) {
    if (at + 1 >= s.size()) {
        out = 0;
        return true;
    }
    const ParsedDouble f = parse_double(s, at);
    if (f.end != s.size() || f.range_error) {
        return false;
    }
    out = f.value;
    return true;
}

// n of `unit` (a number field's DTK_* switch): the fields it fills in `mask`.
Status apply_unit(UnitKind unit, std::int64_t value, double fraction, unsigned& mask, ItmIn& itm) {
    bool ok = true;
    switch (unit) {
        case UnitKind::microsecond:
            ok = adjust_microseconds(value, fraction, 1, itm);
            mask = k_bit_microsecond;
            break;
        case UnitKind::millisecond:
            ok = adjust_microseconds(value, fraction, 1000, itm);
            mask = k_bit_millisecond;
            break;
        case UnitKind::second:
            ok = adjust_microseconds(value, fraction, k_usecs_per_second, itm);
            // Seconds with a fraction count as milli- and microseconds too.
            mask = fraction == 0 ? k_bit_second : k_bits_all_seconds;
            break;
        case UnitKind::minute:
            ok = adjust_microseconds(value, fraction, k_usecs_per_minute, itm);
            mask = k_bit_minute;
            break;
        case UnitKind::hour:
            ok = adjust_microseconds(value, fraction, k_usecs_per_hour, itm);
            mask = k_bit_hour;
            break;
        case UnitKind::day:
            ok = adjust_days(value, 1, itm) &&
                 adjust_fract_microseconds(fraction, k_usecs_per_day, itm);
            mask = k_bit_day;
            break;
        case UnitKind::week:
            ok = adjust_days(value, 7, itm) && adjust_fract_days(fraction, 7, itm);
            mask = k_bit_week;
            break;
        case UnitKind::month:
            ok = adjust_months(value, itm) && adjust_fract_days(fraction, k_days_per_month, itm);
            mask = k_bit_month;
            break;
        case UnitKind::year:
            ok = adjust_years(value, 1, itm) && adjust_fract_years(fraction, 1, itm);
            mask = k_bit_year;
            break;
        case UnitKind::decade:
            ok = adjust_years(value, 10, itm) && adjust_fract_years(fraction, 10, itm);
            mask = k_bit_decade;
            break;
        case UnitKind::century:
            ok = adjust_years(value, 100, itm) && adjust_fract_years(fraction, 100, itm);
            mask = k_bit_century;
            break;
        case UnitKind::millennium:
            ok = adjust_years(value, 1000, itm) && adjust_fract_years(fraction, 1000, itm);
            mask = k_bit_millennium;
            break;
        default:
            return Status::bad_format;
    }
    return ok ? Status::ok : Status::field_overflow;
}

// A number (or years-months) field read in `unit`; see DecodeInterval's DTK_NUMBER case.
Status decode_number(const DateField& f, UnitKind& unit, bool force_negative, unsigned& mask,
                     ItmIn& itm) {
    const std::string& s = f.text;
    const Parsed whole = parse_long(s, 0);
    if (whole.range_error) {
        return Status::field_overflow;
    }
    std::int64_t value = whole.value;
    double fraction = 0;
    const std::size_t at = whole.end;
    if (at < s.size() && s[at] == '-') {
        // SQL "years-months"
        const Parsed months = parse_int(s, at + 1);
        if (months.range_error || months.value < 0 || months.value >= k_months_per_year) {
            return Status::field_overflow;
        }
        if (months.end != s.size()) {
            return Status::bad_format;
        }
        unit = UnitKind::month;
        const std::int64_t m = s[0] == '-' ? -months.value : months.value;
        if (__builtin_mul_overflow(value, k_months_per_year, &value) ||
            __builtin_add_overflow(value, m, &value)) {
            return Status::field_overflow;
        }
    } else if (at < s.size() && s[at] == '.') {
        if (!parse_fraction(s, at, fraction)) {
            return Status::bad_format;
        }
        if (s[0] == '-') {
            fraction = -fraction;
        }
    } else if (at < s.size()) {
        return Status::bad_format;
    }
    if (force_negative) {
        if (value > 0) {
            value = -value;
        }
        if (fraction > 0) {
            fraction = -fraction;
        }
    }
    const Status status = apply_unit(unit, value, fraction, mask, itm);
    if (status == Status::ok && unit == UnitKind::hour) {
        unit = UnitKind::day;  // "1 2 hours" is 1 day 2 hours
    }
    return status;
}

// DecodeInterval over ParseDateTime's fields.
Status decode_interval(const std::vector<DateField>& fields, unsigned range, IntervalStyle style,
                       ItmIn& itm) {
    // sql_standard: "-1 2:00:00" is -(1 day 2 hours) when no field but the first has a sign.
    bool force_negative = false;
    if (style == IntervalStyle::sql_standard && !fields.empty() && fields[0].text[0] == '-') {
        force_negative = true;
        for (std::size_t i = 1; i < fields.size(); ++i) {
            if (fields[i].text[0] == '-' || fields[i].text[0] == '+') {
                force_negative = false;
                break;
            }
        }
    }
    // No unit yet: the rightmost number takes the column's smallest field. "ago" leaves no
    // unit for the number to its left ("5 ago" is refused).
    std::optional<UnitKind> unit;
    bool is_before = false;
    unsigned seen = 0;
    for (std::size_t i = fields.size(); i-- > 0;) {
        const DateField& f = fields[i];
        unsigned mask = 0;
        Status status = Status::ok;
        switch (f.type) {
            case FieldType::time:
                status = decode_clock(f.text, range, mask, itm);
                if (status != Status::ok) {
                    return status;
                }
                if (force_negative && itm.usec > 0) {
                    itm.usec = -itm.usec;
                }
                unit = UnitKind::day;
                break;
            case FieldType::tz:
                // A signed clock, read like one; anything else a signed number.
                if (f.text.find(':', 1) != std::string::npos) {
                    ItmIn tried = itm;
                    if (decode_clock(f.text.substr(1), range, mask, tried) == Status::ok) {
                        itm = tried;
                        if (f.text[0] == '-') {
                            if (itm.usec == INT64_MIN) {
                                return Status::field_overflow;
                            }
                            itm.usec = -itm.usec;
                        }
                        if (force_negative && itm.usec > 0) {
                            itm.usec = -itm.usec;
                        }
                        unit = UnitKind::day;
                        break;
                    }
                    mask = 0;
                }
                [[fallthrough]];
            case FieldType::date:
            case FieldType::number: {
                UnitKind u = unit.value_or(bare_number_unit(range));
                status = decode_number(f, u, force_negative, mask, itm);
                if (status != Status::ok) {
                    return status;
                }
                unit = u;
                break;
            }
            case FieldType::string:
            case FieldType::special: {
                const UnitKind u = unit_of(f.text);
                if (u == UnitKind::none) {
                    return Status::bad_format;
                }
                if (u == UnitKind::ago) {
                    is_before = true;
                }
                unit = u;  // after "ago": no unit a number can take
                continue;
            }
        }
        if ((mask & seen) != 0) {
            return Status::bad_format;
        }
        seen |= mask;
    }
    if (seen == 0) {
        return Status::bad_format;
    }
    if (is_before) {
        if (itm.usec == INT64_MIN || itm.mday == INT32_MIN || itm.mon == INT32_MIN ||
            itm.year == INT32_MIN) {
            return Status::field_overflow;
        }
        itm.usec = -itm.usec;
        itm.mday = -itm.mday;
        itm.mon = -itm.mon;
        itm.year = -itm.year;
    }
    return Status::ok;
}

}  // namespace

Value parse_interval(const Context& cx, std::int32_t typmod, IntervalStyle style) {
    ItmIn itm;
    std::vector<DateField> fields;
    Status status = split_fields(cx.text, fields);
    if (status == Status::ok) {
        status = decode_interval(fields, range_of(typmod), style, itm);
    }
    if (status == Status::bad_format) {
        // ISO 8601, read from the text as given: only when the other reading is a bad format.
        itm = ItmIn{};
        status = decode_iso_interval(std::string(cx.text), itm);
    }
    switch (status) {
        case Status::ok:
            break;
        case Status::bad_format:
            cx.syntax("interval", k_invalid_datetime);
        case Status::field_overflow:
            cx.fail_value("interval field value out of range", k_interval_field_overflow);
    }
    // itmin2interval: years and months together must fit the interval's int32 months.
    const std::int64_t months = static_cast<std::int64_t>(itm.year) * k_months_per_year + itm.mon;
    if (months < INT32_MIN || months > INT32_MAX) {
        cx.fail_value("interval out of range", k_datetime_overflow);
    }
    return Value(Interval{itm.usec, itm.mday, static_cast<std::int32_t>(months)});
}

}  // namespace pg_ingest::detail::text_input
