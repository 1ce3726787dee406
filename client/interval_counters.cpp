// The server's Adjust* steps of interval input; see interval_counters.hpp.
#include "interval_counters.hpp"

#include <cerrno>
#include <climits>
#include <cmath>

#include "text_value_internal.hpp"

namespace pg_ingest::detail::text_input::interval_input {

namespace {

bool add32(std::int32_t& into, std::int64_t amount) {
    const std::int64_t sum = static_cast<std::int64_t>(into) + amount;
    if (amount < INT32_MIN || amount > INT32_MAX || sum < INT32_MIN || sum > INT32_MAX) {
        return false;
    }
    into = static_cast<std::int32_t>(sum);
    return true;
}

// A double truncated toward zero to int64, as C's cast; false where the cast is undefined.
bool truncated(double value, std::int64_t& out) {
    if (!(value > -9223372036854775808.0 && value < 9223372036854775808.0)) {
        return false;
    }
    out = static_cast<std::int64_t>(value);
    return true;
}

}  // namespace

bool multiply_add(std::int64_t value, std::int64_t multiplier, std::int64_t& sum) {
    std::int64_t product = 0;
    return !__builtin_mul_overflow(value, multiplier, &product) &&
           !__builtin_add_overflow(sum, product, &sum);
}

// AdjustFractMicroseconds: frac * scale microseconds; the whole part truncated, the rest rounded
// (half to even, as rint) and added in double arithmetic as the server's `usec += rint(frac)`.
bool adjust_fract_microseconds(double frac, std::int64_t scale, ItmIn& itm) {
    if (frac == 0) {
        return true;
    }
    frac *= static_cast<double>(scale);
    std::int64_t usec = 0;
    if (!truncated(frac, usec)) {
        return false;
    }
    frac -= static_cast<double>(usec);
    if (!truncated(static_cast<double>(usec) + std::rint(frac), usec)) {
        return false;
    }
    return !__builtin_add_overflow(itm.usec, usec, &itm.usec);
}

// AdjustFractDays: frac * scale days, the whole days counted, the rest as microseconds.
bool adjust_fract_days(double frac, int scale, ItmIn& itm) {
    if (frac == 0) {
        return true;
    }
    frac *= scale;
    std::int64_t extra_days = 0;
    if (!truncated(frac, extra_days) || extra_days < INT32_MIN || extra_days > INT32_MAX ||
        !add32(itm.mday, extra_days)) {
        return false;
    }
    frac -= static_cast<double>(extra_days);
    return adjust_fract_microseconds(frac, k_usecs_per_day, itm);
}

// AdjustFractYears: frac * scale years as whole months, rounded.
bool adjust_fract_years(double frac, int scale, ItmIn& itm) {
    std::int64_t extra_months = 0;
    if (!truncated(std::rint(frac * scale * k_months_per_year), extra_months) ||
        extra_months < INT32_MIN || extra_months > INT32_MAX) {
        return false;
    }
    return add32(itm.mon, extra_months);
}

bool adjust_microseconds(std::int64_t value, double frac, std::int64_t scale, ItmIn& itm) {
    return multiply_add(value, scale, itm.usec) && adjust_fract_microseconds(frac, scale, itm);
}

bool adjust_days(std::int64_t value, int scale, ItmIn& itm) {
    if (value < INT32_MIN || value > INT32_MAX) {
        return false;
    }
    return add32(itm.mday, value * scale);
}

bool adjust_months(std::int64_t value, ItmIn& itm) {
    return value >= INT32_MIN && value <= INT32_MAX && add32(itm.mon, value);
}

bool adjust_years(std::int64_t value, int scale, ItmIn& itm) {
    if (value < INT32_MIN || value > INT32_MAX) {
        return false;
    }
    return add32(itm.year, value * scale);
}

ParsedDouble parse_double(const std::string& s, std::size_t at) {
    ParsedDouble p;
    const char* start = s.c_str() + at;
    char* stop = nullptr;
    errno = 0;
    p.value = c_strtod(start, &stop);
    p.range_error = errno != 0;
    p.end = at + static_cast<std::size_t>(stop - start);
    return p;
}

}  // namespace pg_ingest::detail::text_input::interval_input
