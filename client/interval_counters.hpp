// Internal: the counters interval input adds into and the server's steps for adding to them
// (datetime.c's Adjust* functions, with their overflow checks and double arithmetic), shared by
// the postgres-style reading (text_value_interval.cpp) and the ISO 8601 one
// (text_value_interval_iso.cpp). Not installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "calendar.hpp"

namespace pg_ingest::detail::text_input::interval_input {

// How a step ends, as the server's DTERR_* codes.
enum class Status { ok, bad_format, field_overflow };

constexpr std::int64_t k_usecs_per_hour = 3600LL * k_usecs_per_second;
constexpr std::int64_t k_usecs_per_minute = 60LL * k_usecs_per_second;
constexpr int k_months_per_year = 12;
constexpr int k_days_per_month = 30;

// The server's struct pg_itm_in: the counters interval input adds into.
struct ItmIn {
    std::int64_t usec = 0;
    std::int32_t mday = 0;
    std::int32_t mon = 0;
    std::int32_t year = 0;
};

// Each adds to `itm` as the server's function of that name does; false on overflow (the server's
// DTERR_FIELD_OVERFLOW), `itm` then partly changed.
bool adjust_fract_microseconds(double frac, std::int64_t scale, ItmIn& itm);
bool adjust_fract_days(double frac, int scale, ItmIn& itm);
bool adjust_fract_years(double frac, int scale, ItmIn& itm);
bool adjust_microseconds(std::int64_t value, double frac, std::int64_t scale, ItmIn& itm);
bool adjust_days(std::int64_t value, int scale, ItmIn& itm);
bool adjust_months(std::int64_t value, ItmIn& itm);
bool adjust_years(std::int64_t value, int scale, ItmIn& itm);
// sum += value * multiplier; false on overflow.
bool multiply_add(std::int64_t value, std::int64_t multiplier, std::int64_t& sum);

// strtod over s[at..] in the C locale: value, where it stopped, ERANGE.
struct ParsedDouble {
    double value = 0;
    std::size_t end = 0;
    bool range_error = false;
};

ParsedDouble parse_double(const std::string& s, std::size_t at);

// DecodeISO8601Interval over the text as given.
Status decode_iso_interval(const std::string& s, ItmIn& itm);

}  // namespace pg_ingest::detail::text_input::interval_input
