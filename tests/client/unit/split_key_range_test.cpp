// split_key_range: contiguous, complete, balanced ranges (no server needed).
#include <cstdint>
#include <limits>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>
#include <pg_ingest/exporter.hpp>

using pg_ingest::split_key_range;

BOOST_AUTO_TEST_SUITE(split_key_range_suite)

BOOST_AUTO_TEST_CASE(ranges_are_contiguous_open_at_both_ends_and_balanced) {
    const auto ranges = split_key_range(-10, 29, 4);  // 40 keys
    BOOST_TEST_REQUIRE(ranges.size() == 4u);
    BOOST_TEST(!ranges[0].lower.has_value());
    BOOST_TEST(ranges[0].with_nulls);
    BOOST_TEST(*ranges[0].upper == 0);
    BOOST_TEST(*ranges[1].lower == 0);
    BOOST_TEST(*ranges[1].upper == 10);
    BOOST_TEST(*ranges[2].lower == 10);
    BOOST_TEST(*ranges[3].lower == 20);
    BOOST_TEST(!ranges[3].upper.has_value());
    for (std::size_t i = 1; i < ranges.size(); ++i) {
        BOOST_TEST(!ranges[i].with_nulls);
        BOOST_TEST(*ranges[i - 1].upper == *ranges[i].lower);
    }
}

BOOST_AUTO_TEST_CASE(fewer_ranges_than_parts_when_the_span_is_small) {
    BOOST_TEST(split_key_range(5, 5, 8).size() == 1u);
    const auto three = split_key_range(1, 3, 8);
    BOOST_TEST_REQUIRE(three.size() == 3u);
    BOOST_TEST(*three[0].upper == 2);
    BOOST_TEST(*three[1].upper == 3);
}

BOOST_AUTO_TEST_CASE(the_full_int64_span_does_not_overflow) {
    constexpr auto lo = std::numeric_limits<std::int64_t>::min();
    constexpr auto hi = std::numeric_limits<std::int64_t>::max();
    const auto ranges = split_key_range(lo, hi, 4);
    BOOST_TEST_REQUIRE(ranges.size() == 4u);
    BOOST_TEST(*ranges[1].lower == lo / 2);
    BOOST_TEST(*ranges[2].lower == 0);
    BOOST_TEST(*ranges[3].lower == hi / 2 + 1);
}

BOOST_AUTO_TEST_CASE(bad_arguments_are_errors) {
    BOOST_CHECK_THROW(split_key_range(0, 10, 0), pg_ingest::Error);
    BOOST_CHECK_THROW(split_key_range(10, 0, 2), pg_ingest::Error);
}

BOOST_AUTO_TEST_SUITE_END()
