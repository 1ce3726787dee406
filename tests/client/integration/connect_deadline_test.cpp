// Connection::connect failure paths: refused, silent and blackholed servers, bad database.
#include <chrono>
#include <stdexcept>
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>

#include "test_support.hpp"

using pg_ingest::Connection;
using pg_ingest::ConnectionOptions;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_password = "Zq9-connect-secret";

ConnectionOptions tcp_options(int port) {
    return ConnectionOptions("host=127.0.0.1 port=" + std::to_string(port) +
                             " dbname=postgres user=nobody sslmode=disable password=" + k_password);
}

// Connects and expects failure; returns the Error after checking what every connect failure
// must satisfy.
pg_ingest::Error expect_connect_failure(const ConnectionOptions& options,
                                        std::chrono::milliseconds timeout,
                                        const std::string& sqlstate = "08001") {
    try {
        Connection::connect(options, timeout);
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == sqlstate);
        BOOST_TEST(error.retryable() == (sqlstate == "08001"));
        BOOST_TEST(!error.connection_usable());
        BOOST_TEST(std::string(error.what()).find(k_password) == std::string::npos, error.what());
        return error;
    }
    BOOST_FAIL("connect unexpectedly succeeded");
    throw std::logic_error("unreachable");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(connect_deadline)

BOOST_AUTO_TEST_CASE(refused_port_fails_fast_with_retryable_08001) {
    const auto start = std::chrono::steady_clock::now();
    const auto error = expect_connect_failure(tcp_options(test::unused_tcp_port()), 10s);
    BOOST_TEST(test::elapsed_ms(start) < 3000);
    BOOST_TEST(std::string(error.what()).find("127.0.0.1") != std::string::npos, error.what());
}

BOOST_AUTO_TEST_CASE(deadline_holds_when_the_server_accepts_but_never_answers) {
    const test::SilentListener listener(test::SilentListener::Mode::completes_handshake);
    const auto start = std::chrono::steady_clock::now();
    const auto error = expect_connect_failure(tcp_options(listener.port()), 700ms);
    const long long elapsed = test::elapsed_ms(start);
    BOOST_TEST(elapsed >= 690);
    BOOST_TEST(elapsed < 700 + 1000);
    BOOST_TEST(std::string(error.what()).find("timed out") != std::string::npos, error.what());
}

BOOST_AUTO_TEST_CASE(deadline_holds_when_syns_are_dropped_like_a_blackholed_host) {
    const test::SilentListener listener(test::SilentListener::Mode::drops_syn);
    const auto start = std::chrono::steady_clock::now();
    // libpq's connect_timeout would allow 60 s; the deadline must win.
    ConnectionOptions options = tcp_options(listener.port());
    options.set("connect_timeout", "60");
    const auto error = expect_connect_failure(options, 700ms);
    const long long elapsed = test::elapsed_ms(start);
    BOOST_TEST(elapsed >= 690);
    BOOST_TEST(elapsed < 700 + 1000);
    BOOST_TEST(std::string(error.what()).find("timed out") != std::string::npos, error.what());
}

BOOST_AUTO_TEST_CASE(absolute_deadline_overload_holds_too) {
    const test::SilentListener listener(test::SilentListener::Mode::completes_handshake);
    const auto start = std::chrono::steady_clock::now();
    BOOST_CHECK_THROW(Connection::connect(tcp_options(listener.port()), start + 300ms),
                      pg_ingest::Error);
    BOOST_TEST(test::elapsed_ms(start) < 300 + 1000);
}

BOOST_AUTO_TEST_CASE(missing_unix_socket_directory_fails_fast) {
    const auto start = std::chrono::steady_clock::now();
    expect_connect_failure(ConnectionOptions("host=/nonexistent/pg_ingest port=5432"), 5s);
    BOOST_TEST(test::elapsed_ms(start) < 2000);
}

// The server's refusal keeps its SQLSTATE and is final: retrying cannot make a database or a
// role exist. The text is libpq's usual one, without the verbose code and LOCATION lines.
BOOST_AUTO_TEST_CASE(unknown_database_is_final_3D000_and_reported_with_its_name) {
    ConnectionOptions options = test::options();
    options.set("dbname", "pg_ingest_no_such_database");
    const auto error = expect_connect_failure(options, 10s, "3D000");
    const std::string what = error.what();
    BOOST_TEST(
        what.find("database \"pg_ingest_no_such_database\" does not exist") != std::string::npos,
        what);
    BOOST_TEST(what.find("3D000") == std::string::npos, what);
    BOOST_TEST(what.find(".c:") == std::string::npos, what);
}

BOOST_AUTO_TEST_CASE(unknown_role_is_final_28000) {
    ConnectionOptions options = test::options();
    options.set("user", "pg_ingest_no_such_role");
    options.set("password", k_password);
    const auto error = expect_connect_failure(options, 10s, "28000");
    BOOST_TEST(std::string(error.what()).find("pg_ingest_no_such_role") != std::string::npos,
               error.what());
}

BOOST_AUTO_TEST_CASE(a_connection_made_after_a_refusal_reports_errors_as_usual) {
    Connection connection = Connection::connect(test::options(), 10s);
    try {
        connection.execute("SELECT 1/0");
        BOOST_FAIL("division by zero succeeded");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "22012");
        BOOST_TEST(std::string(error.what()) == "division by zero");
    }
}

BOOST_AUTO_TEST_CASE(non_positive_timeout_is_a_programming_error) {
    BOOST_CHECK_THROW(Connection::connect(test::options(), 0ms), std::invalid_argument);
    BOOST_CHECK_THROW(Connection::connect(test::options(), -5ms), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(second_host_is_tried_when_the_first_refuses) {
    const ConnectionOptions options(
        "host=127.0.0.1," + test::tcp_host() + " port=" + std::to_string(test::unused_tcp_port()) +
        "," + test::port() + " dbname=" + test::dbname() + " user=" + test::user());
    Connection connection = Connection::connect(options, 10s);
    BOOST_TEST(connection.is_open());
    BOOST_TEST(*connection.execute("SELECT 1").get(0, 0) == "1");
}

BOOST_AUTO_TEST_CASE(connect_timeout_passes_a_silent_first_host_on_to_the_next) {
    const test::SilentListener listener(test::SilentListener::Mode::completes_handshake);
    const std::string hosts = "127.0.0.1:" + std::to_string(listener.port()) + "," +
                              test::tcp_host() + ":" + test::port();
    // libpq's keyword in a URI, and the JDBC property that maps to it.
    for (const std::string& url : {"postgresql://" + test::user() + "@" + hosts + "/" +
                                       test::dbname() + "?connect_timeout=2",
                                   "jdbc:postgresql://" + hosts + "/" + test::dbname() +
                                       "?user=" + test::user() + "&connectTimeout=2"}) {
        BOOST_TEST_CONTEXT(url) {
            const auto start = std::chrono::steady_clock::now();
            Connection connection = Connection::connect(ConnectionOptions(url), 20s);
            const long long elapsed = test::elapsed_ms(start);
            BOOST_TEST(*connection.execute("SELECT 1").get(0, 0) == "1");
            BOOST_TEST(elapsed >= 1900);  // the silent host had its 2 s
            BOOST_TEST(elapsed < 2000 + 3000);
        }
    }
    // Every host silent: each has its bound, and the error names them all.
    const test::SilentListener other(test::SilentListener::Mode::completes_handshake);
    const ConnectionOptions both(
        "host=127.0.0.1,127.0.0.1 port=" + std::to_string(listener.port()) + "," +
        std::to_string(other.port()) + " dbname=postgres user=nobody connect_timeout=2");
    const auto start = std::chrono::steady_clock::now();
    const auto error = expect_connect_failure(both, 20s);
    BOOST_TEST(test::elapsed_ms(start) < 2 * 2000 + 2000);
    BOOST_TEST(std::string(error.what()).find(std::to_string(other.port())) != std::string::npos,
               error.what());
}

BOOST_AUTO_TEST_SUITE_END()
