// Connection against a live server: queries, errors, quoting, moves, URL forms.
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>

#include "test_support.hpp"

using pg_ingest::Connection;
using pg_ingest::ConnectionOptions;
using namespace std::chrono_literals;

namespace {

bool backend_alive(Connection& observer, int pid) {
    return *observer
                .execute_params("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int",
                                {std::to_string(pid)})
                .get(0, 0) == "1";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(connection)

BOOST_AUTO_TEST_CASE(connects_and_runs_a_simple_query) {
    Connection connection = test::connect();
    BOOST_TEST(connection.is_open());
    BOOST_TEST(connection.server_version() >= 150000);
    BOOST_TEST(connection.backend_pid() > 0);
    BOOST_TEST(connection.native_handle() != nullptr);
    const auto result = connection.execute("SELECT 1 AS one, NULL::text AS nothing, 'x y' AS text");
    BOOST_TEST(result.rows() == 1u);
    BOOST_TEST(result.columns() == 3u);
    BOOST_TEST(result.column_name(0) == "one");
    BOOST_TEST(*result.get(0, 0) == "1");
    BOOST_TEST(result.is_null(0, 1));
    BOOST_TEST(*result.get(0, 2) == "x y");
    BOOST_TEST(result.command_tag() == "SELECT 1");
}

BOOST_AUTO_TEST_CASE(text_is_always_exchanged_as_utf8_whatever_pgclientencoding_says) {
    ::setenv("PGCLIENTENCODING", "LATIN1", 1);
    Connection connection = test::connect();
    ::unsetenv("PGCLIENTENCODING");
    BOOST_TEST(*connection.execute("SHOW client_encoding").get(0, 0) == "UTF8");
    // 'é' as UTF-8 bytes arrives as one character, not as the two LATIN1 ones "Ã©".
    const auto result =
        connection.execute_params("SELECT length($1::text), $1::text", {"\xc3\xa9"});
    BOOST_TEST(*result.get(0, 0) == "1");
    BOOST_TEST(*result.get(0, 1) == "\xc3\xa9");
}

BOOST_AUTO_TEST_CASE(execute_params_sends_text_values_and_nulls) {
    Connection connection = test::connect();
    const auto result = connection.execute_params("SELECT $1::int + 1, $2::text IS NULL, $3::text",
                                                  {"41", std::nullopt, "it's \"q\""});
    BOOST_TEST(*result.get(0, 0) == "42");
    BOOST_TEST(*result.get(0, 1) == "t");
    BOOST_TEST(*result.get(0, 2) == "it's \"q\"");
}

BOOST_AUTO_TEST_CASE(commands_report_affected_rows_and_multi_statement_returns_the_last) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, v text)");
    const auto insert = connection.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL)");
    BOOST_TEST(insert.affected_rows() == 3u);
    BOOST_TEST(insert.command_tag() == "INSERT 0 3");
    BOOST_TEST(insert.rows() == 0u);
    const auto last =
        connection.execute("UPDATE t SET v = 'z' WHERE id > 1; SELECT count(*) FROM t");
    BOOST_TEST(*last.get(0, 0) == "3");
    BOOST_TEST(*connection.execute("SELECT count(*) FROM t WHERE v = 'z'").get(0, 0) == "2");
}

// A CancelToken, used from another thread while the session is blocked in a statement, ends
// that statement with 57014; the session stays usable, and the token stays harmless after it.
BOOST_AUTO_TEST_CASE(cancel_token_cancels_a_running_statement_from_another_thread) {
    Connection connection = test::connect();
    const pg_ingest::CancelToken token = connection.cancel_token();
    BOOST_TEST(static_cast<bool>(token));
    BOOST_TEST(!static_cast<bool>(pg_ingest::CancelToken()));
    BOOST_TEST(!pg_ingest::CancelToken().cancel());
    const auto started = std::chrono::steady_clock::now();
    std::thread canceller([&token] {
        std::this_thread::sleep_for(500ms);
        BOOST_TEST(token.cancel());
    });
    try {
        connection.execute("SELECT pg_sleep(30)");
        BOOST_FAIL("pg_sleep(30) was not cancelled");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "57014");
        BOOST_TEST(error.connection_usable());
    }
    canceller.join();
    BOOST_CHECK(std::chrono::steady_clock::now() - started < 10s);
    std::this_thread::sleep_for(500ms);  // the token's second request (300 ms later) is over
    BOOST_TEST(*connection.execute("SELECT 2").get(0, 0) == "2");
    Connection closed = test::connect();
    closed.close();
    BOOST_CHECK_THROW(closed.cancel_token(), pg_ingest::Error);
}

// sslmode=require against a server without SSL (the test clusters, over TCP): the client's own
// policy refuses it, which no retry changes: 28000, not retryable.
BOOST_AUTO_TEST_CASE(ssl_required_of_a_server_without_ssl_is_final_not_retryable) {
    ConnectionOptions options = test::options();
    options.set("host", "127.0.0.1");  // over TCP: a Unix socket never uses SSL
    options.set("hostaddr", "");
    options.set("sslmode", "require");
    try {
        Connection::connect(options, 10s);
        BOOST_FAIL("sslmode=require connected to a server without SSL");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "28000", error.what());
        BOOST_TEST(!error.retryable());
        BOOST_TEST(std::string(error.what()).find("SSL was required") != std::string::npos,
                   error.what());
    }
}

BOOST_AUTO_TEST_CASE(server_error_keeps_sqlstate_detail_hint_and_connection_stays_usable) {
    Connection connection = test::connect();
    try {
        connection.execute(
            "DO $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '22012', DETAIL = 'd', "
            "HINT = 'h'; END$$");
        BOOST_FAIL("RAISE EXCEPTION did not throw");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(std::string(error.what()) == "boom");
        BOOST_TEST(error.sqlstate() == "22012");
        BOOST_TEST(error.detail() == "d");
        BOOST_TEST(error.hint() == "h");
        BOOST_TEST(!error.retryable());
        BOOST_TEST(error.connection_usable());
    }
    BOOST_TEST(connection.is_open());
    BOOST_TEST(*connection.execute("SELECT 2").get(0, 0) == "2");
}

BOOST_AUTO_TEST_CASE(unique_violation_carries_the_key_detail) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE k (id int PRIMARY KEY)");
    connection.execute("INSERT INTO k VALUES (7)");
    try {
        connection.execute("INSERT INTO k VALUES (7)");
        BOOST_FAIL("duplicate key did not throw");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "23505");
        BOOST_TEST(error.detail() == "Key (id)=(7) already exists.");
        BOOST_TEST(!error.retryable());
    }
}

BOOST_AUTO_TEST_CASE(syntax_error_is_permanent_with_42601) {
    Connection connection = test::connect();
    try {
        connection.execute("SELEC 1");
        BOOST_FAIL("syntax error did not throw");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "42601");
        BOOST_TEST(!error.retryable());
        BOOST_TEST(error.connection_usable());
    }
}

BOOST_AUTO_TEST_CASE(quote_identifier_round_trips_mixed_case_name_with_double_quote) {
    Connection connection = test::connect();
    const std::string name = "Mixed\"Case Table";
    const std::string quoted = connection.quote_identifier(name);
    BOOST_TEST(quoted == "\"Mixed\"\"Case Table\"");
    connection.execute("CREATE TEMP TABLE " + quoted + " (x int)");
    const auto found = connection.execute_params(
        "SELECT count(*) FROM pg_class WHERE relname = $1 AND relpersistence = 't'", {name});
    BOOST_TEST(*found.get(0, 0) == "1");
    connection.execute("INSERT INTO " + quoted + " VALUES (5)");
    BOOST_TEST(*connection.execute("SELECT x FROM " + quoted).get(0, 0) == "5");
}

BOOST_AUTO_TEST_CASE(quote_literal_round_trips_quotes_and_backslashes) {
    Connection connection = test::connect();
    const std::string value = R"(it's a \ back'slash)";
    const auto result = connection.execute("SELECT " + connection.quote_literal(value));
    BOOST_TEST(*result.get(0, 0) == value);
}

BOOST_AUTO_TEST_CASE(moved_from_connection_is_not_open_and_its_destructor_is_harmless) {
    Connection original = test::connect();
    const int pid = original.backend_pid();
    {
        Connection moved = std::move(original);
        BOOST_TEST(moved.is_open());
        BOOST_TEST(moved.backend_pid() == pid);
        BOOST_TEST(!original.is_open());  // NOLINT(bugprone-use-after-move): the behaviour tested
        BOOST_TEST(!original.ping());
        BOOST_TEST(original.native_handle() == nullptr);
        BOOST_TEST(original.server_version() == 0);
        try {
            original.execute("SELECT 1");
            BOOST_FAIL("execute on a moved-from connection succeeded");
        } catch (const pg_ingest::Error& error) {
            BOOST_TEST(error.sqlstate() == "08003");
            BOOST_TEST(!error.connection_usable());
        }
        BOOST_CHECK_THROW(original.quote_identifier("x"), pg_ingest::Error);
        BOOST_TEST(*moved.execute("SELECT 3").get(0, 0) == "3");
    }
    // `moved` is gone and closed its session; destroying `original` later must be a no-op.
    Connection observer = test::connect();
    for (int i = 0; i < 50 && backend_alive(observer, pid); ++i) {
        std::this_thread::sleep_for(100ms);
    }
    BOOST_TEST(!backend_alive(observer, pid));
}

BOOST_AUTO_TEST_CASE(move_assignment_closes_the_previous_session) {
    Connection target = test::connect();
    Connection source = test::connect();
    const int old_pid = target.backend_pid();
    const int new_pid = source.backend_pid();
    target = std::move(source);
    BOOST_TEST(target.backend_pid() == new_pid);
    for (int i = 0; i < 50 && backend_alive(target, old_pid); ++i) {
        std::this_thread::sleep_for(100ms);
    }
    BOOST_TEST(!backend_alive(target, old_pid));
}

BOOST_AUTO_TEST_CASE(close_ends_the_session_and_later_calls_fail_with_08003) {
    Connection connection = test::connect();
    BOOST_TEST(connection.ping(1s));
    connection.close();
    connection.close();  // idempotent
    BOOST_TEST(!connection.is_open());
    BOOST_TEST(!connection.ping());
    BOOST_CHECK_EXCEPTION(connection.execute("SELECT 1"), pg_ingest::Error,
                          [](const pg_ingest::Error& e) { return e.sqlstate() == "08003"; });
}

BOOST_AUTO_TEST_CASE(ping_with_non_positive_timeout_is_false_and_keeps_the_session) {
    Connection connection = test::connect();
    BOOST_TEST(!connection.ping(0ms));
    BOOST_TEST(connection.is_open());
    BOOST_TEST(connection.ping(2s));
}

BOOST_AUTO_TEST_CASE(ping_works_inside_an_aborted_transaction) {
    Connection connection = test::connect();
    connection.execute("BEGIN");
    BOOST_CHECK_THROW(connection.execute("SELECT 1/0"), pg_ingest::Error);
    BOOST_TEST(connection.ping());
    connection.execute("ROLLBACK");
    BOOST_TEST(*connection.execute("SELECT 4").get(0, 0) == "4");
}

BOOST_AUTO_TEST_CASE(notice_handler_receives_server_notices) {
    Connection connection = test::connect();
    std::vector<std::string> notices;
    connection.set_notice_handler([&notices](const std::string& text) { notices.push_back(text); });
    connection.execute("DO $$BEGIN RAISE NOTICE 'hello %', 42; END$$");
    BOOST_TEST_REQUIRE(notices.size() == 1u);
    BOOST_TEST(notices[0].find("hello 42") != std::string::npos, notices[0]);
}

BOOST_AUTO_TEST_CASE(copy_through_execute_is_rejected_and_the_session_survives) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE c (x int)");
    BOOST_CHECK_THROW(connection.execute("COPY c FROM STDIN"), pg_ingest::Error);
    BOOST_CHECK_THROW(connection.execute("COPY (SELECT 1) TO STDOUT"), pg_ingest::Error);
    BOOST_TEST(connection.is_open());
    BOOST_TEST(*connection.execute("SELECT count(*) FROM c").get(0, 0) == "0");
}

BOOST_AUTO_TEST_CASE(jdbc_url_built_from_the_test_dsn_connects_over_tcp) {
    const std::string url = "jdbc:postgresql://" + test::tcp_host() + ":" + test::port() + "/" +
                            test::dbname() + "?user=" + test::user() +
                            "&ApplicationName=pg_ingest+jdbc&currentSchema=pg_catalog,public" +
                            "&prepareThreshold=0&sslmode=disable";
    const ConnectionOptions options(url);
    BOOST_TEST(options.ignored_parameters().size() == 1u);
    Connection connection = Connection::connect(options, 10s);
    const auto result = connection.execute(
        "SELECT inet_server_addr() IS NOT NULL, current_setting('application_name'), "
        "current_setting('search_path'), current_user");
    BOOST_TEST(*result.get(0, 0) == "t");  // TCP, not a unix socket
    BOOST_TEST(*result.get(0, 1) == "pg_ingest jdbc");
    BOOST_TEST(*result.get(0, 2) == "pg_catalog,public");
    BOOST_TEST(*result.get(0, 3) == test::user());
}

BOOST_AUTO_TEST_CASE(postgres_uri_built_from_the_test_dsn_connects) {
    const std::string uri = "postgresql://" + test::user() + "@" + test::tcp_host() + ":" +
                            test::port() + "/" + test::dbname() +
                            "?application_name=pg_ingest%20uri";
    Connection connection = Connection::connect(ConnectionOptions(uri), 10s);
    BOOST_TEST(*connection.execute("SELECT current_setting('application_name')").get(0, 0) ==
               "pg_ingest uri");
}

BOOST_AUTO_TEST_SUITE_END()
