// Text-format field -> typed Value, following the server's input functions (int4in, float8in,
// boolin, date_in, timestamp_in, interval_in, byteain, array_in, json_in) for the inputs its own
// output styles produce, so that what COPY accepts, the typed writer accepts the same way.
#include <pg_ingest/text_value.hpp>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <pg_ingest/error.hpp>

namespace pg_ingest {

namespace {

constexpr const char* k_invalid_text = "22P02";
constexpr const char* k_out_of_range = "22003";
constexpr const char* k_invalid_datetime = "22007";
constexpr const char* k_datetime_overflow = "22008";
constexpr const char* k_tz_displacement = "22009";
constexpr const char* k_interval_field_overflow = "22015";
constexpr const char* k_bad_character = "22021";
constexpr const char* k_invalid_parameter = "22023";
constexpr const char* k_untranslatable = "22P05";
constexpr const char* k_not_supported = "0A000";

constexpr std::int64_t k_usecs_per_second = 1000000;
constexpr std::int64_t k_usecs_per_day = 86400LL * k_usecs_per_second;
constexpr std::int64_t k_unix_epoch_days = -10957;  // 1970-01-01 in days since 2000-01-01
// The server's ranges: dates 4714-11-24 BC .. 5874897-12-31, timestamps 4714-11-24 BC ..
// 294276-12-31 23:59:59.999999.
constexpr std::int64_t k_min_date_days = -2451545;
constexpr std::int64_t k_end_date_days = 2147483494LL - 2451545LL;
constexpr std::int64_t k_min_timestamp = -211813488000000000LL;
constexpr std::int64_t k_end_timestamp = 9223371331200000000LL;

// The value as shown in messages: long values cut, NUL bytes made visible.
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

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string lowered(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = lower(c);
    }
    return out;
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && is_blank(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_blank(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

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
    const std::string s(trimmed(cx.text));
    if (s.empty()) {
        cx.syntax(name);
    }
    const std::string l = lowered(s);
    if (l == "nan") {
        return Value(std::nan(""));
    }
    if (l == "infinity" || l == "+infinity" || l == "inf" || l == "+inf") {
        return Value(HUGE_VAL);
    }
    if (l == "-infinity" || l == "-inf") {
        return Value(-HUGE_VAL);
    }
    // strtod/strtof would also take "nan(...)" and "infinity" spellings handled above; anything
    // starting with a letter is refused here as the server's float8in refuses it.
    const char first = s[0] == '+' || s[0] == '-' ? (s.size() > 1 ? s[1] : '\0') : s[0];
    if (!is_digit(first) && first != '.') {
        cx.syntax(name);
    }
    errno = 0;
    char* end = nullptr;
    double value = 0;
    if (single) {
        value = static_cast<double>(std::strtof(s.c_str(), &end));
    } else {
        value = std::strtod(s.c_str(), &end);
    }
    if (end == s.c_str() || *end != '\0') {
        cx.syntax(name);
    }
    // ERANGE on a denormal result is fine (as on the server); true underflow and overflow are not.
    if (errno == ERANGE && (value == 0.0 || std::isinf(value))) {
        cx.fail(shown(cx.text) + " is out of range for type " + name, k_out_of_range);
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

// Dates and times --------------------------------------------------------------------------------

bool leap_year(std::int64_t year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(std::int64_t year, int month) {
    static constexpr int k_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && leap_year(year) ? 29 : k_days[month - 1];
}

// Days since 2000-01-01 of a proleptic Gregorian date (astronomical year numbering).
std::int64_t days_since_2000(std::int64_t year, int month, int day) {
    year -= month <= 2 ? 1 : 0;
    const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
    const std::int64_t year_of_era = year - era * 400;
    const std::int64_t month_from_march = month > 2 ? month - 3 : month + 9;
    const std::int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    const std::int64_t day_of_era =
        year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468 - 10957;
}

struct DateTime {
    enum class Special { none, pos_infinity, neg_infinity } special = Special::none;
    bool has_date = false;
    bool has_time = false;
    std::int64_t days = 0;     // since 2000-01-01
    std::int64_t time_us = 0;  // since midnight, may be 24:00:00 (or more after rounding)
    std::optional<std::int64_t> offset_seconds;  // east of Greenwich
};

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
};

// HH:MM[:SS[.fraction]] -> microseconds; fractions beyond microseconds are rounded (rint), as
// the server rounds them. Checks the field ranges (seconds may be 60, a leap second).
bool scan_time(Scanner& sc, std::int64_t& micros, bool& field_overflow) {
    std::int64_t hour = 0;
    std::int64_t minute = 0;
    std::int64_t second = 0;
    if (!sc.digits(1, 2, hour) || sc.peek() != ':') {
        return false;
    }
    ++sc.pos;
    if (!sc.digits(2, 2, minute)) {
        return false;
    }
    std::int64_t fraction_us = 0;
    if (sc.peek() == ':') {
        ++sc.pos;
        if (!sc.digits(2, 2, second)) {
            return false;
        }
        if (sc.peek() == '.') {
            const std::size_t start = sc.pos;
            ++sc.pos;
            while (is_digit(sc.peek())) {
                ++sc.pos;
            }
            const std::string fraction(sc.s.substr(start, sc.pos - start));
            fraction_us = static_cast<std::int64_t>(
                std::rint(std::strtod(fraction.c_str(), nullptr) * k_usecs_per_second));
        }
    }
    if (hour > 24 || minute > 59 || second > 60) {
        field_overflow = true;
    }
    micros = ((hour * 60 + minute) * 60 + second) * k_usecs_per_second + fraction_us;
    if (micros > k_usecs_per_day) {
        field_overflow = true;
    }
    return true;
}

// +HH, +HHMM, +HH:MM, +HH:MM:SS, +HHMMSS (and '-'); seconds east of Greenwich.
bool scan_offset(Scanner& sc, std::int64_t& offset, bool& displacement_overflow) {
    const char sign = sc.peek();
    if (sign != '+' && sign != '-') {
        return false;
    }
    ++sc.pos;
    std::int64_t hours = 0;
    std::int64_t minutes = 0;
    std::int64_t seconds = 0;
    std::size_t count = 0;
    std::int64_t run = 0;
    if (!sc.digits(1, 6, run, &count)) {
        return false;
    }
    if (count <= 2) {
        hours = run;
        if (sc.peek() == ':') {
            ++sc.pos;
            if (!sc.digits(2, 2, minutes)) {
                return false;
            }
            if (sc.peek() == ':') {
                ++sc.pos;
                if (!sc.digits(2, 2, seconds)) {
                    return false;
                }
            }
        }
    } else if (count == 4) {
        hours = run / 100;
        minutes = run % 100;
    } else if (count == 6) {
        hours = run / 10000;
        minutes = run / 100 % 100;
        seconds = run % 100;
    } else {
        return false;
    }
    if (minutes > 59 || seconds > 59) {
        return false;
    }
    if (hours > 15) {
        displacement_overflow = true;
    }
    offset = (hours * 3600 + minutes * 60 + seconds) * (sign == '-' ? -1 : 1);
    return true;
}

// The ISO forms the server prints (DateStyle ISO) and a few spellings around them. `type_name`
// is used for syntax errors; `want_date` says whether a date part is required.
DateTime parse_datetime(const Context& cx, const char* type_name, bool want_date) {
    DateTime dt;
    const std::string_view s = trimmed(cx.text);
    const std::string l = lowered(s);
    if (l == "infinity" || l == "+infinity") {
        dt.special = DateTime::Special::pos_infinity;
        return dt;
    }
    if (l == "-infinity") {
        dt.special = DateTime::Special::neg_infinity;
        return dt;
    }
    if (l == "epoch") {
        dt.has_date = true;
        dt.days = k_unix_epoch_days;
        dt.offset_seconds = 0;
        return dt;
    }
    Scanner sc{s};
    bool field_overflow = false;
    bool displacement_overflow = false;
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
        }
    } else if (want_date) {
        cx.syntax(type_name, k_invalid_datetime);
    }
    bool bc = false;
    bool era_given = false;
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
            if (!scan_time(sc, dt.time_us, field_overflow)) {
                cx.syntax(type_name, k_invalid_datetime);
            }
            dt.has_time = true;
        } else if ((c == '+' || c == '-') && !dt.offset_seconds && (dt.has_time || dt.has_date)) {
            std::int64_t offset = 0;
            if (!scan_offset(sc, offset, displacement_overflow)) {
                cx.syntax(type_name, k_invalid_datetime);
            }
            dt.offset_seconds = offset;
        } else if (is_alpha(c)) {
            std::size_t end = sc.pos;
            while (end < s.size() && (is_alpha(s[end]) || s[end] == '/' || s[end] == '_')) {
                ++end;
            }
            const std::string word = lowered(s.substr(sc.pos, end - sc.pos));
            if ((word == "bc" || word == "ad") && !era_given) {
                era_given = true;
                bc = word == "bc";
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
    if (displacement_overflow) {
        cx.fail_value("time zone displacement out of range", k_tz_displacement);
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
    if (dt.special != DateTime::Special::none || !dt.has_time) {
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

// Intervals --------------------------------------------------------------------------------------

struct IntervalSum {
    std::int64_t months = 0;
    std::int64_t days = 0;
    std::int64_t micros = 0;
};

enum class Unit {
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
    millennium
};

std::optional<Unit> unit_of(const std::string& word) {
    static const std::pair<const char*, Unit> k_units[] = {
        {"microsecond", Unit::microsecond},
        {"microseconds", Unit::microsecond},
        {"microsecon", Unit::microsecond},
        {"us", Unit::microsecond},
        {"usec", Unit::microsecond},
        {"usecs", Unit::microsecond},
        {"useconds", Unit::microsecond},
        {"millisecond", Unit::millisecond},
        {"milliseconds", Unit::millisecond},
        {"millisecon", Unit::millisecond},
        {"ms", Unit::millisecond},
        {"msec", Unit::millisecond},
        {"msecs", Unit::millisecond},
        {"mseconds", Unit::millisecond},
        {"second", Unit::second},
        {"seconds", Unit::second},
        {"sec", Unit::second},
        {"secs", Unit::second},
        {"s", Unit::second},
        {"minute", Unit::minute},
        {"minutes", Unit::minute},
        {"min", Unit::minute},
        {"mins", Unit::minute},
        {"m", Unit::minute},
        {"hour", Unit::hour},
        {"hours", Unit::hour},
        {"hr", Unit::hour},
        {"hrs", Unit::hour},
        {"h", Unit::hour},
        {"day", Unit::day},
        {"days", Unit::day},
        {"d", Unit::day},
        {"week", Unit::week},
        {"weeks", Unit::week},
        {"w", Unit::week},
        {"month", Unit::month},
        {"months", Unit::month},
        {"mon", Unit::month},
        {"mons", Unit::month},
        {"year", Unit::year},
        {"years", Unit::year},
        {"yr", Unit::year},
        {"yrs", Unit::year},
        {"y", Unit::year},
        {"decade", Unit::decade},
        {"decades", Unit::decade},
        {"dec", Unit::decade},
        {"decs", Unit::decade},
        {"century", Unit::century},
        {"centuries", Unit::century},
        {"cent", Unit::century},
        {"c", Unit::century},
        {"millennium", Unit::millennium},
        {"millennia", Unit::millennium},
        {"mil", Unit::millennium},
        {"mils", Unit::millennium},
    };
    for (const auto& [name, unit] : k_units) {
        if (word == name) {
            return unit;
        }
    }
    return std::nullopt;
}

// A signed decimal number split as the server splits it: integer part and signed fraction.
struct Number {
    std::int64_t whole = 0;
    double fraction = 0;
};

bool scan_number(Scanner& sc, Number& out, bool& overflow) {
    const std::size_t start = sc.pos;
    bool negative = false;
    if (sc.peek() == '+' || sc.peek() == '-') {
        negative = sc.peek() == '-';
        ++sc.pos;
    }
    std::int64_t whole = 0;
    std::size_t digits = 0;
    while (is_digit(sc.peek())) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, sc.peek() - '0', &whole)) {
            overflow = true;
        }
        ++sc.pos;
        ++digits;
    }
    double fraction = 0;
    if (sc.peek() == '.') {
        const std::size_t dot = sc.pos;
        ++sc.pos;
        while (is_digit(sc.peek())) {
            ++sc.pos;
            ++digits;
        }
        fraction = std::strtod(std::string(sc.s.substr(dot, sc.pos - dot)).c_str(), nullptr);
    }
    if (digits == 0) {
        sc.pos = start;
        return false;
    }
    out.whole = negative ? -whole : whole;
    out.fraction = negative ? -fraction : fraction;
    return true;
}

class IntervalBuilder {
  public:
    explicit IntervalBuilder(const Context& cx) : m_cx(cx) {}

    void add_months(std::int64_t months) { add(m_sum.months, months); }
    void add_days(std::int64_t days) { add(m_sum.days, days); }
    void add_micros(std::int64_t micros) { add(m_sum.micros, micros); }

    // fraction * scale microseconds, rounded
    void add_fraction_micros(double fraction, double scale) {
        const double micros = std::rint(fraction * scale);
        if (!(std::fabs(micros) < 9.2e18)) {
            overflow();
        }
        add_micros(static_cast<std::int64_t>(micros));
    }
    // fraction * scale days: whole days, the rest as microseconds
    void add_fraction_days(double fraction, double scale) {
        const double days = fraction * scale;
        const double whole = std::trunc(days);
        if (!(std::fabs(whole) < 2.0e9)) {
            overflow();
        }
        add_days(static_cast<std::int64_t>(whole));
        add_fraction_micros(days - whole, static_cast<double>(k_usecs_per_day));
    }

    void apply(const Number& n, Unit unit) {
        switch (unit) {
            case Unit::microsecond:
                add_micros(n.whole);
                add_fraction_micros(n.fraction, 1);
                return;
            case Unit::millisecond:
                add_micros(times(n.whole, 1000));
                add_fraction_micros(n.fraction, 1000);
                return;
            case Unit::second:
                add_micros(times(n.whole, k_usecs_per_second));
                add_fraction_micros(n.fraction, k_usecs_per_second);
                return;
            case Unit::minute:
                add_micros(times(n.whole, 60 * k_usecs_per_second));
                add_fraction_micros(n.fraction, 60.0 * k_usecs_per_second);
                return;
            case Unit::hour:
                add_micros(times(n.whole, 3600 * k_usecs_per_second));
                add_fraction_micros(n.fraction, 3600.0 * k_usecs_per_second);
                return;
            case Unit::day:
                add_days(n.whole);
                add_fraction_micros(n.fraction, static_cast<double>(k_usecs_per_day));
                return;
            case Unit::week:
                add_days(times(n.whole, 7));
                add_fraction_days(n.fraction, 7);
                return;
            case Unit::month:
                add_months(n.whole);
                add_fraction_days(n.fraction, 30);
                return;
            case Unit::year:
                add_years(n, 12);
                return;
            case Unit::decade:
                add_years(n, 120);
                return;
            case Unit::century:
                add_years(n, 1200);
                return;
            case Unit::millennium:
                add_years(n, 12000);
                return;
        }
    }

    void negate() {
        m_sum.months = -m_sum.months;
        m_sum.days = -m_sum.days;
        if (m_sum.micros == INT64_MIN) {
            overflow();
        }
        m_sum.micros = -m_sum.micros;
    }

    Interval result() const {
        if (m_sum.months < INT32_MIN || m_sum.months > INT32_MAX || m_sum.days < INT32_MIN ||
            m_sum.days > INT32_MAX) {
            overflow();
        }
        return Interval{m_sum.micros, static_cast<std::int32_t>(m_sum.days),
                        static_cast<std::int32_t>(m_sum.months)};
    }

    [[noreturn]] void overflow() const {
        m_cx.fail_value("interval out of range", k_datetime_overflow);
    }

  private:
    void add_years(const Number& n, std::int64_t months_per) {
        add_months(times(n.whole, months_per));
        const double extra = std::rint(n.fraction * static_cast<double>(months_per));
        add_months(static_cast<std::int64_t>(extra));
    }
    std::int64_t times(std::int64_t a, std::int64_t b) const {
        std::int64_t out = 0;
        if (__builtin_mul_overflow(a, b, &out)) {
            overflow();
        }
        return out;
    }
    void add(std::int64_t& into, std::int64_t amount) const {
        if (__builtin_add_overflow(into, amount, &into)) {
            overflow();
        }
    }

    const Context& m_cx;
    IntervalSum m_sum;
};

// P[nY][nM][nW][nD][T[nH][nM][nS]]
Interval parse_iso_interval(const Context& cx, const std::string& l) {
    IntervalBuilder b(cx);
    Scanner sc{l};
    sc.pos = 1;  // 'p'
    bool in_time = false;
    bool any = false;
    while (!sc.done()) {
        if (sc.peek() == 't' && !in_time) {
            in_time = true;
            ++sc.pos;
            continue;
        }
        Number n;
        bool overflow = false;
        if (!scan_number(sc, n, overflow)) {
            cx.syntax("interval", k_invalid_datetime);
        }
        if (overflow) {
            cx.fail_value("interval field value out of range", k_interval_field_overflow);
        }
        const char designator = sc.peek();
        ++sc.pos;
        if (!in_time) {
            switch (designator) {
                case 'y':
                    b.apply(n, Unit::year);
                    break;
                case 'm':
                    b.apply(n, Unit::month);
                    break;
                case 'w':
                    b.apply(n, Unit::week);
                    break;
                case 'd':
                    b.apply(n, Unit::day);
                    break;
                default:
                    cx.syntax("interval", k_invalid_datetime);
            }
        } else {
            switch (designator) {
                case 'h':
                    b.apply(n, Unit::hour);
                    break;
                case 'm':
                    b.apply(n, Unit::minute);
                    break;
                case 's':
                    b.apply(n, Unit::second);
                    break;
                default:
                    cx.syntax("interval", k_invalid_datetime);
            }
        }
        any = true;
    }
    if (!any) {
        cx.syntax("interval", k_invalid_datetime);
    }
    return b.result();
}

// [+-]H+:MM[:SS[.frac]] inside an interval (hours unbounded).
bool scan_interval_time(const Context& cx, const std::string& token, IntervalBuilder& b) {
    Scanner sc{token};
    bool negative = false;
    if (sc.peek() == '+' || sc.peek() == '-') {
        negative = sc.peek() == '-';
        ++sc.pos;
    }
    std::int64_t hours = 0;
    std::int64_t minutes = 0;
    std::int64_t seconds = 0;
    double fraction = 0;
    if (!sc.digits(1, 18, hours) || sc.peek() != ':') {
        return false;
    }
    ++sc.pos;
    if (!sc.digits(1, 2, minutes)) {
        return false;
    }
    if (sc.peek() == ':') {
        ++sc.pos;
        if (!sc.digits(1, 2, seconds)) {
            return false;
        }
    }
    if (sc.peek() == '.') {
        const std::size_t dot = sc.pos;
        ++sc.pos;
        while (is_digit(sc.peek())) {
            ++sc.pos;
        }
        fraction = std::strtod(std::string(token.substr(dot, sc.pos - dot)).c_str(), nullptr);
    }
    if (!sc.done()) {
        return false;
    }
    if (minutes > 59 || seconds > 59) {
        cx.fail_value("interval field value out of range", k_interval_field_overflow);
    }
    IntervalBuilder part(cx);
    part.apply(Number{hours, 0}, Unit::hour);
    part.apply(Number{minutes, 0}, Unit::minute);
    part.apply(Number{seconds, fraction}, Unit::second);
    Interval piece = part.result();
    b.add_micros(negative ? -piece.microseconds : piece.microseconds);
    return true;
}

// sql_standard year-month field: [+-]Y-M
bool scan_year_month(const std::string& token, IntervalBuilder& b) {
    Scanner sc{token};
    bool negative = false;
    if (sc.peek() == '+' || sc.peek() == '-') {
        negative = sc.peek() == '-';
        ++sc.pos;
    }
    std::int64_t years = 0;
    std::int64_t months = 0;
    if (!sc.digits(1, 9, years) || sc.peek() != '-') {
        return false;
    }
    ++sc.pos;
    if (!sc.digits(1, 2, months) || !sc.done() || months > 11) {
        return false;
    }
    const std::int64_t total = years * 12 + months;
    b.add_months(negative ? -total : total);
    return true;
}

Value parse_interval(const Context& cx) {
    const std::string l = lowered(trimmed(cx.text));
    if (l.empty()) {
        cx.syntax("interval", k_invalid_datetime);
    }
    if (l[0] == 'p') {
        return Value(parse_iso_interval(cx, l));
    }
    std::vector<std::string> tokens;
    {
        std::size_t i = 0;
        if (l[0] == '@') {
            i = 1;
        }
        while (i < l.size()) {
            while (i < l.size() && is_blank(l[i])) {
                ++i;
            }
            const std::size_t start = i;
            while (i < l.size() && !is_blank(l[i])) {
                ++i;
            }
            if (i > start) {
                tokens.push_back(l.substr(start, i - start));
            }
        }
    }
    bool ago = false;
    if (!tokens.empty() && tokens.back() == "ago") {
        ago = true;
        tokens.pop_back();
    }
    if (tokens.empty()) {
        cx.syntax("interval", k_invalid_datetime);
    }
    IntervalBuilder b(cx);
    auto is_time_token = [](const std::string& token) {
        return token.find(':') != std::string::npos;
    };
    for (std::size_t t = 0; t < tokens.size(); ++t) {
        const std::string& token = tokens[t];
        if (is_time_token(token)) {
            if (!scan_interval_time(cx, token, b)) {
                cx.syntax("interval", k_invalid_datetime);
            }
            continue;
        }
        if (scan_year_month(token, b)) {
            continue;
        }
        Scanner sc{token};
        Number n;
        bool overflow = false;
        if (!scan_number(sc, n, overflow)) {
            cx.syntax("interval", k_invalid_datetime);
        }
        if (overflow) {
            cx.fail_value("interval field value out of range", k_interval_field_overflow);
        }
        std::string unit_word(token.substr(sc.pos));
        if (unit_word.empty() && t + 1 < tokens.size() && !tokens[t + 1].empty() &&
            is_alpha(tokens[t + 1][0])) {
            unit_word = tokens[++t];
        }
        if (unit_word.empty()) {
            // A bare number: days before a time field (sql_standard "3 4:05:06"), else seconds.
            const bool before_time = t + 1 < tokens.size() && is_time_token(tokens[t + 1]);
            if (!before_time && t + 1 < tokens.size()) {
                cx.syntax("interval", k_invalid_datetime);
            }
            b.apply(n, before_time ? Unit::day : Unit::second);
            continue;
        }
        const auto unit = unit_of(unit_word);
        if (!unit) {
            cx.syntax("interval", k_invalid_datetime);
        }
        b.apply(n, *unit);
    }
    if (ago) {
        b.negate();
    }
    return Value(b.result());
}

// bytea ------------------------------------------------------------------------------------------

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

Value parse_bytea(const Context& cx) {
    const std::string_view s = cx.text;
    Bytes out;
    if (s.size() >= 2 && s[0] == '\\' && s[1] == 'x') {
        out.data.reserve((s.size() - 2) / 2);
        std::size_t i = 2;
        while (i < s.size()) {
            if (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
                ++i;
                continue;
            }
            const int high = hex_value(s[i]);
            if (high < 0) {
                cx.fail(
                    "invalid hexadecimal digit: \"" + std::string(1, s[i]) + "\" in " + shown(s),
                    k_invalid_parameter);
            }
            if (i + 1 >= s.size()) {
                cx.fail_value("invalid hexadecimal data: odd number of digits",
                              k_invalid_parameter);
            }
            const int low = hex_value(s[i + 1]);
            if (low < 0) {
                cx.fail("invalid hexadecimal digit: \"" + std::string(1, s[i + 1]) + "\" in " +
                            shown(s),
                        k_invalid_parameter);
            }
            out.data += static_cast<char>(high << 4 | low);
            i += 2;
        }
        return Value(std::move(out));
    }
    // The escape format: \\ is a backslash, \ooo (first digit 0-3) an octal byte.
    out.data.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out.data += s[i];
            continue;
        }
        if (i + 1 < s.size() && s[i + 1] == '\\') {
            out.data += '\\';
            ++i;
            continue;
        }
        if (i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
            s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
            out.data +=
                static_cast<char>((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 3;
            continue;
        }
        cx.syntax("bytea");
    }
    return Value(std::move(out));
}

// JSON -------------------------------------------------------------------------------------------

class JsonValidator {
  public:
    JsonValidator(const Context& cx, bool jsonb) : m_cx(cx), m_s(cx.text), m_jsonb(jsonb) {}

    void run() {
        skip_space();
        value(0);
        skip_space();
        if (m_pos < m_s.size()) {
            bad("Expected end of input, but found \"" + token_at(m_pos) + "\".");
        }
    }

  private:
    [[noreturn]] void bad(const std::string& detail) const {
        m_cx.fail_value(std::string("invalid input syntax for type ") +
                            (m_jsonb ? "jsonb" : "json") + " (" + detail + ")",
                        k_invalid_text, detail);
    }
    std::string token_at(std::size_t at) const {
        std::size_t end = at;
        while (end < m_s.size() && end - at < 20 &&
               (is_alpha(m_s[end]) || is_digit(m_s[end]) || m_s[end] == '.' || m_s[end] == '-' ||
                m_s[end] == '+' || static_cast<unsigned char>(m_s[end]) >= 0x80)) {
            ++end;
        }
        return std::string(m_s.substr(at, std::max<std::size_t>(end - at, 1)));
    }
    void skip_space() {
        while (m_pos < m_s.size() && (m_s[m_pos] == ' ' || m_s[m_pos] == '\t' ||
                                      m_s[m_pos] == '\n' || m_s[m_pos] == '\r')) {
            ++m_pos;
        }
    }
    char peek() const { return m_pos < m_s.size() ? m_s[m_pos] : '\0'; }

    void value(int depth) {
        if (depth > 6000) {
            m_cx.fail("JSON nesting too deep", "54001");
        }
        if (m_pos >= m_s.size()) {
            bad("The input string ended unexpectedly.");
        }
        const char c = m_s[m_pos];
        if (c == '{') {
            ++m_pos;
            skip_space();
            if (peek() == '}') {
                ++m_pos;
                return;
            }
            while (true) {
                skip_space();
                if (peek() != '"') {
                    bad("Expected string, but found \"" + token_at(m_pos) + "\".");
                }
                string();
                skip_space();
                if (peek() != ':') {
                    bad("Expected \":\", but found \"" + token_at(m_pos) + "\".");
                }
                ++m_pos;
                skip_space();
                value(depth + 1);
                skip_space();
                if (peek() == ',') {
                    ++m_pos;
                    continue;
                }
                if (peek() == '}') {
                    ++m_pos;
                    return;
                }
                bad("Expected \",\" or \"}\", but found \"" + token_at(m_pos) + "\".");
            }
        }
        if (c == '[') {
            ++m_pos;
            skip_space();
            if (peek() == ']') {
                ++m_pos;
                return;
            }
            while (true) {
                skip_space();
                value(depth + 1);
                skip_space();
                if (peek() == ',') {
                    ++m_pos;
                    continue;
                }
                if (peek() == ']') {
                    ++m_pos;
                    return;
                }
                bad("Expected \",\" or \"]\", but found \"" + token_at(m_pos) + "\".");
            }
        }
        if (c == '"') {
            string();
            return;
        }
        if (c == '-' || is_digit(c)) {
            number();
            return;
        }
        for (const char* word : {"true", "false", "null"}) {
            const std::string_view w(word);
            if (m_s.substr(m_pos, w.size()) == w &&
                (m_pos + w.size() >= m_s.size() || !is_alpha(m_s[m_pos + w.size()]))) {
                m_pos += w.size();
                return;
            }
        }
        bad("Token \"" + token_at(m_pos) + "\" is invalid.");
    }

    void number() {
        const std::size_t start = m_pos;
        if (peek() == '-') {
            ++m_pos;
        }
        if (peek() == '0') {
            ++m_pos;
        } else if (is_digit(peek())) {
            while (is_digit(peek())) {
                ++m_pos;
            }
        } else {
            bad("Token \"" + token_at(start) + "\" is invalid.");
        }
        if (peek() == '.') {
            ++m_pos;
            if (!is_digit(peek())) {
                bad("Token \"" + token_at(start) + "\" is invalid.");
            }
            while (is_digit(peek())) {
                ++m_pos;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            ++m_pos;
            if (peek() == '+' || peek() == '-') {
                ++m_pos;
            }
            if (!is_digit(peek())) {
                bad("Token \"" + token_at(start) + "\" is invalid.");
            }
            while (is_digit(peek())) {
                ++m_pos;
            }
        }
        if (is_alpha(peek()) || is_digit(peek())) {
            bad("Token \"" + token_at(start) + "\" is invalid.");
        }
    }

    unsigned hex4() {
        if (m_pos + 4 > m_s.size()) {
            bad("\"\\u\" must be followed by four hexadecimal digits.");
        }
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hex_value(m_s[m_pos + static_cast<std::size_t>(k)]);
            if (h < 0) {
                bad("\"\\u\" must be followed by four hexadecimal digits.");
            }
            v = v << 4 | static_cast<unsigned>(h);
        }
        m_pos += 4;
        return v;
    }

    void string() {
        ++m_pos;  // opening quote
        while (true) {
            if (m_pos >= m_s.size()) {
                bad("The input string ended unexpectedly.");
            }
            const char c = m_s[m_pos];
            if (c == '"') {
                ++m_pos;
                return;
            }
            if (static_cast<unsigned char>(c) < 0x20) {
                bad("Character with value 0x" + hex_byte(c) + " must be escaped.");
            }
            if (c != '\\') {
                ++m_pos;
                continue;
            }
            ++m_pos;
            const char e = peek();
            ++m_pos;
            switch (e) {
                case '"':
                case '\\':
                case '/':
                case 'b':
                case 'f':
                case 'n':
                case 'r':
                case 't':
                    break;
                case 'u': {
                    const unsigned code = hex4();
                    if (code == 0 && m_jsonb) {
                        m_cx.fail_value(
                            "unsupported Unicode escape sequence (\\u0000 cannot be "
                            "converted to text)",
                            k_untranslatable);
                    }
                    if (code >= 0xDC00 && code <= 0xDFFF) {
                        bad("Unicode low surrogate must follow a high surrogate.");
                    }
                    if (code >= 0xD800 && code <= 0xDBFF) {
                        if (peek() != '\\' || m_pos + 1 >= m_s.size() || m_s[m_pos + 1] != 'u') {
                            bad("Unicode low surrogate must follow a high surrogate.");
                        }
                        m_pos += 2;
                        const unsigned low = hex4();
                        if (low < 0xDC00 || low > 0xDFFF) {
                            bad("Unicode low surrogate must follow a high surrogate.");
                        }
                    }
                    break;
                }
                default:
                    bad("Escape sequence \"\\" + std::string(1, e) + "\" is invalid.");
            }
        }
    }

    static std::string hex_byte(char c) {
        static const char* digits = "0123456789abcdef";
        const auto u = static_cast<unsigned char>(c);
        return std::string{digits[u >> 4], digits[u & 15]};
    }

    const Context& m_cx;
    std::string_view m_s;
    bool m_jsonb;
    std::size_t m_pos = 0;
};

// Arrays -----------------------------------------------------------------------------------------

Value parse_array(const Context& cx, const ColumnType& type, const TextValueOptions& options) {
    const std::string_view s = cx.text;
    auto malformed = [&](const std::string& detail) {
        cx.fail_value("malformed array literal", k_invalid_text, detail);
    };
    std::size_t i = 0;
    while (i < s.size() && is_blank(s[i])) {
        ++i;
    }
    if (i < s.size() && s[i] == '[') {
        // Dimension decoration: only [1:n]= fits a Value array.
        const std::size_t close = s.find(']', i);
        if (close == std::string_view::npos) {
            malformed("Missing \"]\" after array dimensions.");
        }
        const std::string dims(s.substr(i + 1, close - i - 1));
        if (dims.rfind("1:", 0) != 0) {
            cx.fail_value("array lower bounds other than 1 are not supported by the client",
                          k_not_supported);
        }
        i = close + 1;
        if (i < s.size() && s[i] == '[') {
            cx.fail_value("multidimensional arrays are not supported by the client",
                          k_not_supported);
        }
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
        if (i >= s.size() || s[i] != '=') {
            malformed("Missing \"=\" after array dimensions.");
        }
        ++i;
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
    }
    if (i >= s.size() || s[i] != '{') {
        malformed("Array value must start with \"{\" or dimension information.");
    }
    ++i;
    ColumnType element;
    element.kind = type.element_kind;
    element.oid = type.element_oid;
    element.typmod = type.typmod;
    element.name = type.name;
    if (element.name.size() > 2 && element.name.compare(element.name.size() - 2, 2, "[]") == 0) {
        element.name.resize(element.name.size() - 2);
    }
    Array array;
    auto skip_blanks = [&] {
        while (i < s.size() && is_blank(s[i])) {
            ++i;
        }
    };
    skip_blanks();
    if (i < s.size() && s[i] == '}') {
        ++i;
    } else {
        while (true) {
            skip_blanks();
            if (i >= s.size()) {
                malformed("Unexpected end of input.");
            }
            if (s[i] == '{') {
                cx.fail_value("multidimensional arrays are not supported by the client",
                              k_not_supported);
            }
            std::string item;
            bool quoted = false;
            bool escaped = false;
            if (s[i] == '"') {
                quoted = true;
                ++i;
                while (true) {
                    if (i >= s.size()) {
                        malformed("Unexpected end of input.");
                    }
                    if (s[i] == '\\') {
                        if (i + 1 >= s.size()) {
                            malformed("Unexpected end of input.");
                        }
                        item += s[i + 1];
                        i += 2;
                        continue;
                    }
                    if (s[i] == '"') {
                        ++i;
                        break;
                    }
                    item += s[i++];
                }
            } else {
                // Unquoted: up to ',' or '}'; trailing blanks that were not escaped are dropped.
                std::size_t keep = 0;
                while (i < s.size() && s[i] != ',' && s[i] != '}') {
                    if (s[i] == '"' || s[i] == '{') {
                        malformed(std::string("Unexpected \"") + s[i] + "\" character.");
                    }
                    if (s[i] == '\\') {
                        if (i + 1 >= s.size()) {
                            malformed("Unexpected end of input.");
                        }
                        item += s[i + 1];
                        i += 2;
                        escaped = true;
                        keep = item.size();
                        continue;
                    }
                    item += s[i];
                    if (!is_blank(s[i])) {
                        keep = item.size();
                    }
                    ++i;
                }
                item.resize(keep);
                if (item.empty() && !escaped) {
                    malformed(std::string("Unexpected \"") + (i < s.size() ? s[i] : ' ') +
                              "\" character.");
                }
            }
            const std::string element_what = std::string(cx.what) + (cx.what.empty() ? "" : ", ") +
                                             "element " + std::to_string(array.elements.size() + 1);
            if (!quoted && !escaped && lowered(item) == "null") {
                array.elements.emplace_back();
            } else {
                array.elements.push_back(parse_text_value(item, element, element_what, options));
            }
            skip_blanks();
            if (i >= s.size()) {
                malformed("Unexpected end of input.");
            }
            if (s[i] == ',') {
                ++i;
                continue;
            }
            if (s[i] == '}') {
                ++i;
                break;
            }
            malformed(std::string("Unexpected \"") + s[i] + "\" character.");
        }
    }
    skip_blanks();
    if (i < s.size()) {
        malformed("Junk after closing right brace.");
    }
    return Value(std::move(array));
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
        case TypeKind::numeric:
            try {
                return Value(Numeric(cx.text));
            } catch (const Error&) {
                cx.syntax("numeric");
            }
        case TypeKind::boolean:
            return parse_boolean(cx);
        case TypeKind::text:
        case TypeKind::varchar:
        case TypeKind::bpchar:
            return Value(std::string(cx.text));
        case TypeKind::json:
        case TypeKind::jsonb:
            JsonValidator(cx, type.kind == TypeKind::jsonb).run();
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
            return parse_interval(cx);
        case TypeKind::array:
            return parse_array(cx, type, options);
    }
    cx.fail_value("unsupported column type " + type.name, k_not_supported);
}

}  // namespace

Value parse_text_value(std::string_view text, const ColumnType& type, std::string_view what,
                       const TextValueOptions& options) {
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
