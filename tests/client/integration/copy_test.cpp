// CopyIn / CopyOut against a live server: loading, errors, abort, lost connections, deadlines.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/copy.hpp>

#include "test_support.hpp"

using pg_ingest::Connection;
using pg_ingest::CopyIn;
using pg_ingest::CopyOut;
using namespace std::chrono_literals;

namespace {

std::string count_rows(Connection& connection, const std::string& table) {
    return *connection.execute("SELECT count(*) FROM " + table).get(0, 0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(copy_streams)

BOOST_AUTO_TEST_CASE(copy_in_loads_text_rows_and_finish_reports_the_count) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_basic (id int, v text)");
    CopyIn copy(connection, "COPY copy_in_basic (id, v) FROM STDIN",
                Connection::Clock::now() + 10s);
    copy.write("1\tone\n");
    copy.write(std::string_view("2\t\\N\n"));
    const std::string third = "3\ttab\\there\n";
    copy.write(third.data(), third.size());
    const auto result = copy.finish();
    BOOST_TEST(!copy.active());
    BOOST_TEST(result.affected_rows() == 3u);
    BOOST_TEST(result.command_tag() == "COPY 3");
    const auto rows = connection.execute("SELECT id, v FROM copy_in_basic ORDER BY id");
    BOOST_TEST(*rows.get(0, 1) == "one");
    BOOST_TEST(rows.is_null(1, 1));
    BOOST_TEST(*rows.get(2, 1) == "tab\there");
    // The connection is back in ordinary (blocking) use.
    BOOST_TEST(*connection.execute("SELECT 1").get(0, 0) == "1");
}

BOOST_AUTO_TEST_CASE(copy_in_streams_more_than_the_buffer_in_one_and_many_writes) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_big (id int, v text)");
    CopyIn copy(connection, "COPY copy_in_big FROM STDIN");
    std::string block;
    const std::string payload(100, 'x');
    for (int i = 0; i < 50000; ++i) {
        block += std::to_string(i) + "\t" + payload + "\n";
        if (i % 1000 == 999) {
            copy.write(block);  // ~100 KiB pieces: bigger than the buffer
            block.clear();
        }
    }
    for (int i = 50000; i < 51000; ++i) {
        copy.write(std::to_string(i) + "\tsmall\n");  // small pieces
    }
    BOOST_TEST(copy.bytes_written() > 5'000'000u);
    BOOST_TEST(copy.finish().affected_rows() == 51000u);
    BOOST_TEST(count_rows(connection, "copy_in_big") == "51000");
}

BOOST_AUTO_TEST_CASE(copy_in_bad_row_throws_server_sqlstate_names_the_line_and_loads_nothing) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_bad (id int)");
    CopyIn copy(connection, "COPY copy_in_bad FROM STDIN");
    copy.write("1\n2\nnot a number\n4\n");
    try {
        copy.finish();
        BOOST_FAIL("bad row accepted");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "22P02");
        BOOST_TEST(!error.retryable());
        BOOST_TEST(error.connection_usable());
    }
    BOOST_TEST(!copy.active());
    BOOST_TEST_REQUIRE(copy.failed_line().has_value());
    BOOST_TEST(*copy.failed_line() == 3u);
    BOOST_TEST(connection.is_open());
    BOOST_TEST(count_rows(connection, "copy_in_bad") == "0");
}

BOOST_AUTO_TEST_CASE(copy_in_error_reported_early_by_the_server_surfaces_in_write_or_finish) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_early (id int)");
    CopyIn copy(connection, "COPY copy_in_early FROM STDIN");
    bool thrown = false;
    try {
        copy.write("oops\n");
        // Keep streaming well past the error: the server has stopped listening by now.
        const std::string rows(1 << 20, '\n');
        for (int i = 0; i < 8; ++i) {
            copy.write(rows);
        }
        copy.finish();
    } catch (const pg_ingest::Error& error) {
        thrown = true;
        BOOST_TEST(error.sqlstate() == "22P02");
    }
    BOOST_TEST(thrown);
    BOOST_TEST(!copy.active());
    BOOST_TEST(*connection.execute("SELECT 2").get(0, 0) == "2");
}

BOOST_AUTO_TEST_CASE(copy_in_abort_rolls_back_and_leaves_the_connection_usable) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_abort (id int)");
    {
        CopyIn copy(connection, "COPY copy_in_abort FROM STDIN");
        copy.write("1\n2\n");
        copy.abort("test abort");
        BOOST_TEST(!copy.active());
        copy.abort("twice is harmless");
        BOOST_CHECK_THROW(copy.write("3\n"), pg_ingest::Error);
    }
    BOOST_TEST(connection.is_open());
    BOOST_TEST(count_rows(connection, "copy_in_abort") == "0");
}

BOOST_AUTO_TEST_CASE(copy_in_destroyed_unfinished_loads_nothing) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_dtor (id int)");
    {
        CopyIn copy(connection, "COPY copy_in_dtor FROM STDIN");
        copy.write("1\n2\n");
    }
    BOOST_TEST(connection.is_open());
    BOOST_TEST(count_rows(connection, "copy_in_dtor") == "0");
}

BOOST_AUTO_TEST_CASE(copy_in_inside_a_transaction_commits_with_it) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_tx (id int)");
    connection.execute("BEGIN");
    CopyIn copy(connection, "COPY copy_in_tx FROM STDIN");
    copy.write("7\n");
    copy.finish();
    connection.execute("ROLLBACK");
    BOOST_TEST(count_rows(connection, "copy_in_tx") == "0");
}

BOOST_AUTO_TEST_CASE(starting_a_copy_with_the_wrong_statement_is_an_error_and_harmless) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_wrong (id int)");
    BOOST_CHECK_THROW(CopyIn(connection, "SELECT 1"), pg_ingest::Error);
    BOOST_TEST(connection.is_open());
    BOOST_CHECK_THROW(CopyOut(connection, "COPY copy_wrong FROM STDIN"), pg_ingest::Error);
    BOOST_TEST(connection.is_open());
    try {
        CopyIn copy(connection, "COPY no_such_table FROM STDIN");
        BOOST_FAIL("COPY into a missing table started");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "42P01");
        BOOST_TEST(error.connection_usable());
    }
    BOOST_TEST(*connection.execute("SELECT 3").get(0, 0) == "3");
}

BOOST_AUTO_TEST_CASE(copy_out_reads_every_row_then_reports_the_count) {
    Connection connection = test::connect();
    CopyOut copy(connection, "COPY (SELECT g, 'v' || g FROM generate_series(1, 1000) g) TO STDOUT",
                 Connection::Clock::now() + 10s);
    std::string chunk;
    std::vector<std::string> rows;
    while (copy.read(chunk)) {
        rows.push_back(chunk);
    }
    BOOST_TEST(rows.size() == 1000u);
    BOOST_TEST(rows.front() == "1\tv1\n");
    BOOST_TEST(rows.back() == "1000\tv1000\n");
    BOOST_TEST(copy.result().command_tag() == "COPY 1000");
    BOOST_TEST(!copy.read(chunk));  // stays at the end
    BOOST_TEST(*connection.execute("SELECT 4").get(0, 0) == "4");
}

BOOST_AUTO_TEST_CASE(copy_out_read_all_calls_the_handler_per_row) {
    Connection connection = test::connect();
    CopyOut copy(connection,
                 "COPY (SELECT g FROM generate_series(1, 250) g) TO STDOUT (FORMAT csv)");
    long long sum = 0;
    const auto count =
        copy.read_all([&](std::string_view row) { sum += std::stoll(std::string(row)); });
    BOOST_TEST(count == 250u);
    BOOST_TEST(sum == 250 * 251 / 2);
}

BOOST_AUTO_TEST_CASE(copy_out_server_error_mid_stream_throws_its_sqlstate) {
    Connection connection = test::connect();
    CopyOut copy(connection, "COPY (SELECT 10 / (5 - g) FROM generate_series(1, 10) g) TO STDOUT");
    std::string chunk;
    int rows = 0;
    try {
        while (copy.read(chunk)) {
            ++rows;
        }
        BOOST_FAIL("division by zero not reported");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "22012");
        BOOST_TEST(error.connection_usable());
    }
    BOOST_TEST(rows <= 4);
    BOOST_TEST(*connection.execute("SELECT 5").get(0, 0) == "5");
}

BOOST_AUTO_TEST_CASE(copy_out_abandoned_closes_the_connection) {
    Connection connection = test::connect();
    {
        CopyOut copy(connection, "COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT");
        std::string chunk;
        BOOST_TEST(copy.read(chunk));
    }
    BOOST_TEST(!connection.is_open());
}

BOOST_AUTO_TEST_CASE(copy_out_deadline_closes_the_connection_with_a_retryable_error) {
    Connection connection = test::connect();
    const auto start = std::chrono::steady_clock::now();
    try {
        CopyOut copy(connection, "COPY (SELECT pg_sleep(20)) TO STDOUT",
                     Connection::Clock::now() + 300ms);
        std::string chunk;
        copy.read(chunk);
        BOOST_FAIL("deadline did not hold");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "08006");
        BOOST_TEST(error.retryable());
        BOOST_TEST(!error.connection_usable());
    }
    BOOST_TEST(test::elapsed_ms(start) < 3000);
    BOOST_TEST(!connection.is_open());
}

// A COPY given up at its deadline is cancelled on the server too. A backend waiting on a lock
// does not notice a closed socket: it would wait on (queueing everyone behind it) and then load.
BOOST_AUTO_TEST_CASE(copy_in_deadline_also_cancels_the_statement_on_the_server) {
    Connection holder = test::connect();
    holder.execute(
        "DROP TABLE IF EXISTS copy_deadline_locked; CREATE TABLE copy_deadline_locked (id int)");
    holder.execute("BEGIN; LOCK TABLE copy_deadline_locked IN ACCESS EXCLUSIVE MODE");
    Connection connection = test::connect();
    const std::string pid = std::to_string(connection.backend_pid());
    const auto start = std::chrono::steady_clock::now();
    try {
        CopyIn copy(connection, "COPY copy_deadline_locked FROM STDIN",
                    Connection::Clock::now() + 300ms);
        BOOST_FAIL("COPY started on a table locked by another session");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "08006", error.what());
        BOOST_TEST(!error.connection_usable());
    }
    BOOST_TEST(test::elapsed_ms(start) < 3000);
    BOOST_TEST(!connection.is_open());
    // The lock is still held: only the cancel can have ended the wait. Watched from a session
    // of its own: inside holder's transaction pg_stat_activity is read once and kept until the
    // transaction ends, so a backend seen at the first look would be seen for ever.
    Connection observer = test::connect();
    std::string waiting;
    for (int attempt = 0; attempt < 100; ++attempt) {
        waiting =
            *observer
                 .execute_params("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", {pid})
                 .get(0, 0);
        if (waiting == "0") {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    BOOST_TEST(waiting == "0");
    holder.execute("ROLLBACK; DROP TABLE copy_deadline_locked");
}

BOOST_AUTO_TEST_CASE(copy_in_on_a_killed_backend_throws_retryable_unusable_error) {
    Connection connection = test::connect();
    connection.execute("CREATE TEMP TABLE copy_in_killed (id int)");
    CopyIn copy(connection, "COPY copy_in_killed FROM STDIN", Connection::Clock::now() + 20s);
    copy.write("1\n");
    {
        Connection killer = test::connect();
        killer.execute_params("SELECT pg_terminate_backend($1::int, 5000)",
                              {std::to_string(connection.backend_pid())});
    }
    try {
        const std::string rows(1 << 16, '\n');
        for (int i = 0; i < 64; ++i) {
            copy.write(rows);
        }
        copy.finish();
        BOOST_FAIL("COPY on a terminated backend succeeded");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST_MESSAGE("killed COPY: [" << error.sqlstate() << "] " << error.what());
        BOOST_TEST(error.retryable());
        BOOST_TEST(!error.connection_usable());
    }
    BOOST_TEST(!copy.active());
    BOOST_TEST(!connection.is_open());
}

BOOST_AUTO_TEST_SUITE_END()
