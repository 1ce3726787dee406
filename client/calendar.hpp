// Internal: the proleptic Gregorian calendar and the server's date and timestamp ranges, shared
// by the Value encoders (value.cpp) and the text parsers (text_value_datetime.cpp).
#pragma once

#include <cstdint>

namespace pg_ingest::detail {

inline constexpr std::int64_t k_usecs_per_second = 1000000;
inline constexpr std::int64_t k_usecs_per_day = 86400LL * k_usecs_per_second;
inline constexpr std::int64_t k_unix_to_pg_days = 10957;  // 1970-01-01 -> 2000-01-01

// The server's ranges: dates 4714-11-24 BC .. 5874897-12-31, timestamps 4714-11-24 BC ..
// 294276-12-31 23:59:59.999999 (days since 2000-01-01, microseconds since 2000-01-01 00:00).
inline constexpr std::int64_t k_min_date_days = -2451545;
inline constexpr std::int64_t k_end_date_days = 2147483494LL - 2451545LL;
inline constexpr std::int64_t k_min_timestamp = -211813488000000000LL;
inline constexpr std::int64_t k_end_timestamp = 9223371331200000000LL;

inline bool leap_year(std::int64_t year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

// month 1..12
inline int days_in_month(std::int64_t year, int month) {
    static constexpr int k_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && leap_year(year) ? 29 : k_days[month - 1];
}

// Days since 2000-01-01 (the server's epoch) of a proleptic Gregorian date, astronomical year
// numbering (March-based year arithmetic); the caller checks the fields.
inline std::int64_t days_since_2000(std::int64_t year, int month, int day) {
    year -= month <= 2 ? 1 : 0;
    const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
    const std::int64_t year_of_era = year - era * 400;
    const std::int64_t month_from_march = month > 2 ? month - 3 : month + 9;
    const std::int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    const std::int64_t day_of_era =
        year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468 - k_unix_to_pg_days;
}

}  // namespace pg_ingest::detail
