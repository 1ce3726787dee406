// Async load jobs without a server: how unexpected answers are classified, and the bounds the
// waiting loop and the loader's connects compute.
#include <chrono>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/async_job.hpp>
#include <pg_ingest/error.hpp>

#include "async_job_wait.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

BOOST_AUTO_TEST_SUITE(async_job_bounds)

BOOST_AUTO_TEST_CASE(an_unknown_job_state_is_an_internal_error_not_retried) {
    try {
        pg_ingest::parse_job_state("PAUSED");
        BOOST_FAIL("no error");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "XX000");
        BOOST_TEST(!error.retryable());
        BOOST_TEST(error.connection_usable());
    }
    BOOST_CHECK(pg_ingest::parse_job_state("finish") == pg_ingest::JobState::finish);
}

BOOST_AUTO_TEST_CASE(the_largest_poll_interval_saturates_instead_of_overflowing) {
    const auto before = Clock::now();
    const auto far =
        pg_ingest::detail::next_poll_at(Clock::time_point::max(), std::chrono::milliseconds::max());
    BOOST_TEST((far > before + std::chrono::hours(24 * 364)));
    // Never past the deadline.
    const auto deadline = Clock::now() + 2s;
    BOOST_TEST(
        (pg_ingest::detail::next_poll_at(deadline, std::chrono::milliseconds::max()) == deadline));
    // An ordinary interval.
    const auto from = Clock::now();
    const auto soon = pg_ingest::detail::next_poll_at(Clock::time_point::max(), 200ms);
    const auto after = Clock::now();
    BOOST_TEST((soon >= from + 200ms && soon <= after + 200ms));
}

BOOST_AUTO_TEST_CASE(a_connect_ends_by_the_deadline_or_connect_timeout_whichever_is_first) {
    using pg_ingest::detail::connect_deadline;
    const auto deadline = Clock::now() + 3s;
    BOOST_TEST((connect_deadline(deadline, 60s) == deadline));
    const auto before = Clock::now();
    const auto by_timeout = connect_deadline(Clock::time_point::max(), 60s);
    const auto by_short_timeout = connect_deadline(deadline, 1s);
    const auto after = Clock::now();
    BOOST_TEST((by_timeout >= before + 60s && by_timeout <= after + 60s));
    BOOST_TEST((by_short_timeout >= before + 1s && by_short_timeout <= after + 1s));
    // connect_timeout's "no practical limit" leaves the deadline alone rather than overflow.
    BOOST_TEST((connect_deadline(deadline, std::chrono::milliseconds::max()) == deadline));
    BOOST_TEST((connect_deadline(Clock::time_point::max(), std::chrono::milliseconds::max()) ==
                Clock::time_point::max()));
}

BOOST_AUTO_TEST_SUITE_END()
