// A session killed by the server surfaces as a retryable Error on an unusable connection.
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>

#include "test_support.hpp"

using pg_ingest::Connection;

namespace {

// Terminates `victim`'s backend from another session and waits (up to 5 s) until it is gone.
void terminate_backend(const Connection& victim) {
    Connection killer = test::connect();
    const auto result = killer.execute_params("SELECT pg_terminate_backend($1::int, 5000)",
                                              {std::to_string(victim.backend_pid())});
    BOOST_TEST_REQUIRE(*result.get(0, 0) == "t");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(lost_connection)

BOOST_AUTO_TEST_CASE(terminated_backend_makes_next_query_throw_retryable_unusable_error) {
    Connection connection = test::connect();
    BOOST_TEST_REQUIRE(connection.is_open());
    terminate_backend(connection);
    try {
        connection.execute("SELECT 1");
        BOOST_FAIL("query on a terminated backend succeeded");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST_MESSAGE("terminated backend: [" << error.sqlstate() << "] " << error.what());
        BOOST_TEST(error.retryable());
        BOOST_TEST(!error.connection_usable());
        // 57P01 when libpq read the server's FATAL message, 08006 when it only saw the EOF.
        BOOST_TEST((error.sqlstate() == "57P01" || error.sqlstate() == "08006"), error.sqlstate());
    }
    BOOST_TEST(!connection.is_open());
    // Later calls fail the same retryable way without touching the dead socket.
    try {
        connection.execute("SELECT 1");
        BOOST_FAIL("second query on a terminated backend succeeded");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "08003");
        BOOST_TEST(error.retryable());
        BOOST_TEST(!error.connection_usable());
    }
}

BOOST_AUTO_TEST_CASE(ping_of_a_terminated_backend_is_false) {
    Connection connection = test::connect();
    BOOST_TEST_REQUIRE(connection.ping());
    terminate_backend(connection);
    BOOST_TEST(!connection.ping());
    BOOST_TEST(!connection.is_open());
}

BOOST_AUTO_TEST_SUITE_END()
