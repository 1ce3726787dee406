// Connection::set_deadline against a live server, directly and through a proxy that goes silent.
#include <csignal>
#include <chrono>
#include <string>
#include <thread>

#include <signal.h>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>

#include "fault_proxy.hpp"
#include "test_support.hpp"

using pg_ingest::Connection;
using Clock = pg_ingest::Connection::Clock;
using namespace std::chrono_literals;

namespace {

void check_given_up(const pg_ingest::Error& error, Connection& connection) {
    BOOST_TEST(error.sqlstate() == "08006");
    BOOST_TEST(error.retryable());
    BOOST_TEST(!error.connection_usable());
    BOOST_TEST(std::string(error.what()).find("deadline passed") != std::string::npos);
    BOOST_TEST(!connection.is_open());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(connection_deadline)

BOOST_AUTO_TEST_CASE(statements_under_a_later_deadline_behave_as_without_one) {
    Connection connection = test::connect();
    BOOST_CHECK(connection.deadline() == Clock::time_point::max());
    const auto deadline = Clock::now() + 60s;
    connection.set_deadline(deadline);
    BOOST_CHECK(connection.deadline() == deadline);
    BOOST_TEST(*connection.execute("SELECT 1; SELECT 2").get(0, 0) == "2");
    const auto result = connection.execute_params("SELECT $1::text || '!', $2::text IS NULL",
                                                  {std::string("tab\there"), std::nullopt});
    BOOST_TEST(*result.get(0, 0) == "tab\there!");
    BOOST_TEST(*result.get(0, 1) == "t");
    const auto error = test::error_of([&] { connection.execute("SELEC 1"); });
    BOOST_TEST(error.sqlstate() == "42601");
    BOOST_TEST(connection.is_open());  // a server error is not a deadline: the session stays
    connection.set_deadline(Clock::time_point::max());
    BOOST_TEST(*connection.execute("SELECT 3").get(0, 0) == "3");
}

// The server is busy: at the deadline the statement is cancelled (not left running behind a
// closed socket) and the session closed.
BOOST_AUTO_TEST_CASE(a_statement_unanswered_at_the_deadline_is_cancelled_and_the_session_closed) {
    Connection observer = test::connect();
    Connection connection = test::connect();
    const std::string pid = std::to_string(connection.backend_pid());
    const auto start = Clock::now();
    connection.set_deadline(start + 300ms);
    const auto error =
        test::error_of([&] { connection.execute("SELECT pg_catalog.pg_sleep(60)"); });
    const auto took = test::elapsed_ms(start);
    check_given_up(error, connection);
    BOOST_TEST(took >= 300);
    BOOST_TEST(took < 10000);
    bool still_sleeping = true;
    for (int i = 0; i < 100 && still_sleeping; ++i) {
        still_sleeping = *observer
                              .execute_params(
                                  "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND "
                                  "state = 'active'",
                                  {pid})
                              .get(0, 0) != "0";
        if (still_sleeping) {
            std::this_thread::sleep_for(50ms);
        }
    }
    BOOST_TEST(!still_sleeping);
}

// A network that goes silent after the statement left: statement_timeout cannot help (no answer
// arrives at all), the connection's deadline does. Both protocols.
BOOST_AUTO_TEST_CASE(a_silent_network_ends_at_the_connection_deadline) {
    test::FaultProxy proxy;
    for (const bool with_params : {false, true}) {
        Connection connection = Connection::connect(proxy.options(), 10s);
        BOOST_TEST(*connection.execute("SELECT 'through the proxy'").get(0, 0) ==
                   "through the proxy");
        proxy.arm_silence("silence_probe");
        const auto start = Clock::now();
        connection.set_deadline(start + 500ms);
        const auto error = test::error_of([&] {
            if (with_params) {
                connection.execute_params("SELECT $1::text AS silence_probe", {"x"});
            } else {
                connection.execute("SELECT 'x' AS silence_probe");
            }
        });
        const auto took = test::elapsed_ms(start);
        check_given_up(error, connection);
        BOOST_TEST(took >= 500);
        BOOST_TEST(took < 10000);
    }
    BOOST_TEST(proxy.cuts() == 2);
}

// A statement larger than the socket buffers to a server that reads nothing (its backend
// stopped): the deadline ends the send. Sending used to happen in blocking mode, where libpq
// waits with no bound. Needs the right to signal the server's processes (the tests run as root
// in CI, the server as postgres).
BOOST_AUTO_TEST_CASE(the_deadline_holds_while_a_large_statement_is_being_sent) {
    Connection connection = test::connect();
    const int pid = std::stoi(*connection.execute("SELECT pg_backend_pid()").get(0, 0));
    BOOST_REQUIRE_MESSAGE(
        ::kill(pid, SIGSTOP) == 0,
        "cannot stop the backend (run the tests as root or as the server's user)");
    const std::string big(64 * 1024 * 1024, 'x');
    const auto start = Clock::now();
    connection.set_deadline(start + 1s);
    const auto error =
        test::error_of([&] { connection.execute_params("SELECT length($1)", {big}); });
    const auto took = test::elapsed_ms(start);
    ::kill(pid, SIGCONT);
    check_given_up(error, connection);
    BOOST_TEST(std::string(error.what()).find("while sending") != std::string::npos, error.what());
    BOOST_TEST(took >= 1000);
    BOOST_TEST(took < 10000);
}

BOOST_AUTO_TEST_CASE(a_deadline_already_passed_sends_nothing) {
    test::FaultProxy proxy;
    Connection connection = Connection::connect(proxy.options(), 10s);
    proxy.count("never_sent_probe");
    connection.execute("SELECT 'never_sent_probe'");
    BOOST_TEST(proxy.counted() == 1);  // the probe is seen when it is sent
    proxy.count("never_sent_probe");
    connection.set_deadline(Clock::now() - 1ms);
    const auto error = test::error_of([&] { connection.execute("SELECT 'never_sent_probe'"); });
    check_given_up(error, connection);
    std::this_thread::sleep_for(200ms);
    BOOST_TEST(proxy.counted() == 0);
}

BOOST_AUTO_TEST_CASE(a_session_ended_under_a_deadline_is_reported_unusable) {
    Connection victim = test::connect();
    Connection admin = test::connect();
    const int pid = victim.backend_pid();
    victim.set_deadline(Clock::now() + 30s);
    std::thread killer([&] {
        std::this_thread::sleep_for(300ms);
        admin.execute("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
    });
    const auto error = test::error_of([&] { victim.execute("SELECT pg_sleep(10)"); });
    killer.join();
    // The FATAL (57P01) is read while the socket is still open; the session is gone all the same.
    BOOST_TEST(error.sqlstate() == "57P01");
    BOOST_TEST(error.retryable());
    BOOST_TEST(!error.connection_usable());
    BOOST_TEST(!victim.is_open());
}

BOOST_AUTO_TEST_SUITE_END()
