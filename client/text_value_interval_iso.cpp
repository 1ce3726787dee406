// parse_text_value for interval, ISO 8601: DecodeISO8601Interval's reading, which interval_in
// tries when the postgres-style reading finds a bad format (see text_value_interval.cpp). Its
// numbers are doubles as strtod reads them ("1e2", "0x10" too), so 1.2 months is 1 month
// 5 days 24:00:00, as the server stores it.
#include <cmath>
#include <string>

#include "interval_counters.hpp"
#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input::interval_input {

namespace {

// ParseISO8601Number: a number as strtod reads it (so "1e2" and "0x10" too), split into a
// whole part and a fraction of the same sign; beyond 1e15 an overflow.
Status iso_number(const std::string& s, std::size_t& at, std::int64_t& whole, double& fraction) {
    const char c = at < s.size() ? s[at] : '\0';
    if (!(is_digit(c) || c == '-' || c == '.')) {
        return Status::bad_format;
    }
    const ParsedDouble p = parse_double(s, at);
    if (p.end == at || p.range_error) {
        return Status::bad_format;
    }
    if (std::isnan(p.value) || p.value < -1.0e15 || p.value > 1.0e15) {
        return Status::field_overflow;
    }
    whole = p.value >= 0 ? static_cast<std::int64_t>(std::floor(p.value))
                         : static_cast<std::int64_t>(-std::floor(-p.value));
    fraction = p.value - static_cast<double>(whole);
    at = p.end;
    return Status::ok;
}

std::size_t iso_integer_width(const std::string& s, std::size_t at) {
    if (at < s.size() && s[at] == '-') {
        ++at;
    }
    std::size_t n = 0;
    while (at + n < s.size() && is_digit(s[at + n])) {
        ++n;
    }
    return n;
}

}  // namespace

// DecodeISO8601Interval: P[nY][nM][nW][nD][T[nH][nM][nS]] and the alternative formats
// PYYYY-MM-DD[THH:MM:SS], PYYYYMMDD[THHMMSS], exactly as given (no blanks).
Status decode_iso_interval(const std::string& s, ItmIn& itm) {
    if (s.size() < 2 || s[0] != 'P') {
        return Status::bad_format;
    }
    std::size_t at = 1;
    bool datepart = true;
    bool havefield = false;
    auto fail = [](bool ok) { return ok ? Status::ok : Status::field_overflow; };
    while (at < s.size()) {
        if (s[at] == 'T') {
            datepart = false;
            havefield = false;
            ++at;
            continue;
        }
        const std::size_t fieldstart = at;
        std::int64_t value = 0;
        double fraction = 0;
        Status status = iso_number(s, at, value, fraction);
        if (status != Status::ok) {
            return status;
        }
        const char unit = at < s.size() ? s[at] : '\0';
        ++at;
        if (datepart) {
            switch (unit) {
                case 'Y':
                    status =
                        fail(adjust_years(value, 1, itm) && adjust_fract_years(fraction, 1, itm));
                    break;
                case 'M':
                    status = fail(adjust_months(value, itm) &&
                                  adjust_fract_days(fraction, k_days_per_month, itm));
                    break;
                case 'W':
                    status =
                        fail(adjust_days(value, 7, itm) && adjust_fract_days(fraction, 7, itm));
                    break;
                case 'D':
                    status = fail(adjust_days(value, 1, itm) &&
                                  adjust_fract_microseconds(fraction, k_usecs_per_day, itm));
                    break;
                case 'T':
                case '\0':
                    if (iso_integer_width(s, fieldstart) == 8 && !havefield) {
                        if (!adjust_years(value / 10000, 1, itm) ||
                            !adjust_months((value / 100) % 100, itm) ||
                            !adjust_days(value % 100, 1, itm) ||
                            !adjust_fract_days(fraction, 1, itm)) {
                            return Status::field_overflow;
                        }
                        if (unit == '\0') {
                            return Status::ok;
                        }
                        datepart = false;
                        havefield = false;
                        continue;
                    }
                    [[fallthrough]];
                case '-':
                    // PYYYY-MM-DD: the extended alternative format
                    if (havefield) {
                        return Status::bad_format;
                    }
                    if (!adjust_years(value, 1, itm) || !adjust_fract_years(fraction, 1, itm)) {
                        return Status::field_overflow;
                    }
                    if (unit == '\0') {
                        return Status::ok;
                    }
                    if (unit == 'T') {
                        datepart = false;
                        havefield = false;
                        continue;
                    }
                    status = iso_number(s, at, value, fraction);
                    if (status != Status::ok) {
                        return status;
                    }
                    if (!adjust_months(value, itm) ||
                        !adjust_fract_days(fraction, k_days_per_month, itm)) {
                        return Status::field_overflow;
                    }
                    if (at >= s.size()) {
                        return Status::ok;
                    }
                    if (s[at] == 'T') {
                        datepart = false;
                        havefield = false;
                        continue;
                    }
                    if (s[at] != '-') {
                        return Status::bad_format;
                    }
                    ++at;
                    status = iso_number(s, at, value, fraction);
                    if (status != Status::ok) {
                        return status;
                    }
                    if (!adjust_days(value, 1, itm) ||
                        !adjust_fract_microseconds(fraction, k_usecs_per_day, itm)) {
                        return Status::field_overflow;
                    }
                    if (at >= s.size()) {
                        return Status::ok;
                    }
                    if (s[at] == 'T') {
                        datepart = false;
                        havefield = false;
                        continue;
                    }
                    return Status::bad_format;
                default:
                    return Status::bad_format;
            }
        } else {
            switch (unit) {
                case 'H':
                    status = fail(adjust_microseconds(value, fraction, k_usecs_per_hour, itm));
                    break;
                case 'M':
                    status = fail(adjust_microseconds(value, fraction, k_usecs_per_minute, itm));
                    break;
                case 'S':
                    status = fail(adjust_microseconds(value, fraction, k_usecs_per_second, itm));
                    break;
                case '\0':
                    if (iso_integer_width(s, fieldstart) == 6 && !havefield) {
                        // THHMMSS: the server adds a fraction here as microseconds, not
                        // seconds ("PT040506.5" is 04:05:06); so does this.
                        if (!adjust_microseconds(value / 10000, 0, k_usecs_per_hour, itm) ||
                            !adjust_microseconds((value / 100) % 100, 0, k_usecs_per_minute, itm) ||
                            !adjust_microseconds(value % 100, 0, k_usecs_per_second, itm) ||
                            !adjust_fract_microseconds(fraction, 1, itm)) {
                            return Status::field_overflow;
                        }
                        return Status::ok;
                    }
                    [[fallthrough]];
                case ':':
                    // THH:MM:SS: the extended alternative format
                    if (havefield) {
                        return Status::bad_format;
                    }
                    if (!adjust_microseconds(value, fraction, k_usecs_per_hour, itm)) {
                        return Status::field_overflow;
                    }
                    if (unit == '\0') {
                        return Status::ok;
                    }
                    status = iso_number(s, at, value, fraction);
                    if (status != Status::ok) {
                        return status;
                    }
                    if (!adjust_microseconds(value, fraction, k_usecs_per_minute, itm)) {
                        return Status::field_overflow;
                    }
                    if (at >= s.size()) {
                        return Status::ok;
                    }
                    if (s[at] != ':') {
                        return Status::bad_format;
                    }
                    ++at;
                    status = iso_number(s, at, value, fraction);
                    if (status != Status::ok) {
                        return status;
                    }
                    if (!adjust_microseconds(value, fraction, k_usecs_per_second, itm)) {
                        return Status::field_overflow;
                    }
                    return at >= s.size() ? Status::ok : Status::bad_format;
                default:
                    return Status::bad_format;
            }
        }
        if (status != Status::ok) {
            return status;
        }
        havefield = true;
    }
    return Status::ok;
}

}  // namespace pg_ingest::detail::text_input::interval_input
