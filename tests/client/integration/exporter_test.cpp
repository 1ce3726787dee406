// Exporter against a live server: every row exactly once, ranges, filter, columns, errors.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/copy.hpp>
#include <pg_ingest/exporter.hpp>

#include "test_support.hpp"

using pg_ingest::Exporter;
using pg_ingest::ExportOptions;
using pg_ingest::QualifiedName;

namespace {

// Collects rows from the callback (which runs on several threads at once).
struct Collector {
    std::mutex mutex;
    std::vector<std::string> rows;
    std::set<std::size_t> ranges_seen;

    Exporter::RowCallback callback() {
        return [this](std::size_t range, std::string_view row) {
            std::lock_guard<std::mutex> lock(mutex);
            rows.emplace_back(row);
            ranges_seen.insert(range);
        };
    }
};

ExportOptions options_for(const std::string& table, std::size_t parallelism,
                          const std::string& key = "id") {
    ExportOptions options;
    options.table = QualifiedName::parse(table);
    options.split_key = key;
    options.parallelism = parallelism;
    return options;
}

// The table's rows as the server prints them in CSV, sorted.
std::vector<std::string> expected_rows(pg_ingest::Connection& connection, const std::string& sql) {
    const auto result = connection.execute(sql);
    std::vector<std::string> rows;
    for (std::size_t r = 0; r < result.rows(); ++r) {
        rows.push_back(*result.get(r, 0) + "\n");
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

std::vector<std::string> sorted(std::vector<std::string> rows) {
    std::sort(rows.begin(), rows.end());
    return rows;
}

pg_ingest::Error export_error(const ExportOptions& options) {
    try {
        Exporter exporter(test::options(), options);
        Collector collector;
        exporter.run(collector.callback());
    } catch (const pg_ingest::Error& error) {
        return error;
    }
    BOOST_FAIL("expected the export to fail");
    return pg_ingest::Error("unreachable");
}

// How many export COPYs of `table` still run on the server, once none does or `within` passed.
std::string copies_left(pg_ingest::Connection& connection, const std::string& table,
                        std::chrono::milliseconds within) {
    const auto until = std::chrono::steady_clock::now() + within;
    while (true) {
        const std::string active =
            *connection
                 .execute_params(
                     "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                     "'COPY (SELECT%' || $1 || '%' AND pid <> pg_backend_pid()",
                     {table})
                 .get(0, 0);
        if (active == "0" || std::chrono::steady_clock::now() >= until) {
            return active;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(exporter)

BOOST_AUTO_TEST_CASE(every_row_exactly_once_with_gaps_negative_keys_and_nulls) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_gaps; "
        "CREATE TABLE exp_gaps (id bigint, v text); "
        "INSERT INTO exp_gaps SELECT g, 'v' || g FROM generate_series(-3000, 3000, 7) g; "
        "INSERT INTO exp_gaps VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max'),"
        " (NULL, 'null key'), (NULL, 'another null'), (42, 'dup'), (42, 'dup')");
    const auto expected = expected_rows(connection, "SELECT concat(id, ',', v) FROM exp_gaps");
    Collector collector;
    const auto result =
        Exporter(test::options(), options_for("exp_gaps", 4)).run(collector.callback());
    BOOST_TEST(result.ranges.size() == 4u);
    BOOST_TEST(result.rows == expected.size());
    BOOST_TEST(sorted(collector.rows) == expected, boost::test_tools::per_element());
    std::uint64_t sum = 0;
    for (const auto& range : result.ranges) {
        sum += range.rows;
    }
    BOOST_TEST(sum == result.rows);
    BOOST_TEST((result.column_names == std::vector<std::string>{"id", "v"}));
}

BOOST_AUTO_TEST_CASE(dense_keys_split_into_balanced_ranges_each_exported_once) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_dense; CREATE TABLE exp_dense (id int PRIMARY KEY, v int); "
        "INSERT INTO exp_dense SELECT g, g * 2 FROM generate_series(1, 20000) g");
    Collector collector;
    const auto result =
        Exporter(test::options(), options_for("exp_dense", 3)).run(collector.callback());
    BOOST_TEST_REQUIRE(result.ranges.size() == 3u);
    BOOST_TEST(collector.ranges_seen.size() == 3u);
    for (const auto& range : result.ranges) {
        BOOST_TEST(range.rows >= 6666u);
        BOOST_TEST(range.rows <= 6667u);
    }
    std::set<std::string> unique(collector.rows.begin(), collector.rows.end());
    BOOST_TEST(unique.size() == 20000u);
    BOOST_TEST(collector.rows.size() == 20000u);
    BOOST_TEST(unique.count("20000,40000\n") == 1u);
}

BOOST_AUTO_TEST_CASE(single_row_and_empty_table) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_one, exp_empty; CREATE TABLE exp_one (id int, v text); "
        "INSERT INTO exp_one VALUES (7, 'seven'); CREATE TABLE exp_empty (id int, v text)");
    Collector one;
    const auto single = Exporter(test::options(), options_for("exp_one", 4)).run(one.callback());
    BOOST_TEST(single.ranges.size() == 1u);
    BOOST_TEST((one.rows == std::vector<std::string>{"7,seven\n"}));

    Collector none;
    const auto empty = Exporter(test::options(), options_for("exp_empty", 4)).run(none.callback());
    BOOST_TEST(empty.rows == 0u);
    BOOST_TEST(empty.ranges.size() == 1u);
    BOOST_TEST(none.rows.empty());
}

BOOST_AUTO_TEST_CASE(filter_and_columns_and_quoted_identifiers) {
    auto connection = test::connect();
    connection.execute(
        "DROP SCHEMA IF EXISTS \"Exp Schema\" CASCADE; CREATE SCHEMA \"Exp Schema\"; "
        "CREATE TABLE \"Exp Schema\".\"Mixed\" (\"Id\" int, \"select\" text, other text); "
        "INSERT INTO \"Exp Schema\".\"Mixed\" SELECT g, 's' || g, 'o' FROM generate_series(1, "
        "1000) g");
    ExportOptions options = options_for("\"Exp Schema\".\"Mixed\"", 4, "Id");
    options.columns = {"select", "Id"};
    options.where = "\"Id\" % 10 = 0 AND other = 'o'";
    Collector collector;
    const auto result = Exporter(test::options(), options).run(collector.callback());
    BOOST_TEST(result.rows == 100u);
    BOOST_TEST((result.column_names == std::vector<std::string>{"select", "Id"}));
    std::vector<std::string> expected;
    for (int i = 10; i <= 1000; i += 10) {
        expected.push_back("s" + std::to_string(i) + "," + std::to_string(i) + "\n");
    }
    BOOST_TEST(sorted(collector.rows) == sorted(expected), boost::test_tools::per_element());
    // The filter also narrows the key range: all four ranges lie within 10..1000.
    BOOST_TEST(*result.ranges[1].lower > 10);
}

BOOST_AUTO_TEST_CASE(csv_stream_has_one_header_and_whole_rows) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_csv; CREATE TABLE exp_csv (id int, \"note, with comma\" text);"
        "INSERT INTO exp_csv SELECT g, repeat('x', g % 50) || E'\\n' || g FROM "
        "generate_series(1, 30000) g");
    std::ostringstream out;
    ExportOptions options = options_for("exp_csv", 4);
    std::uint64_t progress_rows = 0;
    std::mutex progress_mutex;
    options.on_progress = [&](std::uint64_t rows, std::uint64_t) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        progress_rows += rows;
    };
    const auto result = Exporter(test::options(), options).run(out, true);
    BOOST_TEST(result.rows == 30000u);
    BOOST_TEST(progress_rows == 30000u);
    const std::string text = out.str();
    BOOST_TEST(text.rfind("id,\"note, with comma\"\n", 0) == 0u);
    // Every row is `id,"x...\nid"` : parse them back and check each id once, intact.
    std::map<int, int> seen;
    std::size_t pos = text.find('\n') + 1;
    while (pos < text.size()) {
        const auto comma = text.find(',', pos);
        const int id = std::stoi(text.substr(pos, comma - pos));
        const auto close = text.find("\"\n", comma + 2);
        BOOST_REQUIRE(close != std::string::npos);
        const std::string field = text.substr(comma + 2, close - comma - 2);
        BOOST_TEST(field ==
                   std::string(static_cast<std::size_t>(id % 50), 'x') + "\n" + std::to_string(id));
        ++seen[id];
        pos = close + 2;
    }
    BOOST_TEST(seen.size() == 30000u);
    BOOST_TEST(
        std::all_of(seen.begin(), seen.end(), [](const auto& kv) { return kv.second == 1; }));
}

// An output stream that refuses the bytes (a full disk, a closed pipe) is an I/O error, 58030,
// not retried, whether it fails at the header or at the rows.
BOOST_AUTO_TEST_CASE(an_output_that_refuses_the_rows_is_an_io_error) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_refused; CREATE TABLE exp_refused (id int, note text);"
        "INSERT INTO exp_refused SELECT g, 'n' || g FROM generate_series(1, 1000) g");
    for (const bool header : {false, true}) {
        BOOST_TEST_CONTEXT("header " << header) {
            std::ostream refused(nullptr);  // no buffer: every write fails
            const auto error = test::error_of([&] {
                Exporter(test::options(), options_for("exp_refused", 2)).run(refused, header);
            });
            BOOST_TEST(error.sqlstate() == "58030");
            BOOST_TEST(!error.retryable());
        }
    }
}

BOOST_AUTO_TEST_CASE(bad_inputs_are_typed_errors) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_bad; CREATE TABLE exp_bad (id int, name text, f float8); "
        "INSERT INTO exp_bad VALUES (1, 'a', 1.5)");
    ExportOptions bad_column = options_for("exp_bad", 2);
    bad_column.columns = {"id", "nope"};
    BOOST_TEST(export_error(bad_column).sqlstate() == "42703");

    BOOST_TEST(export_error(options_for("exp_missing", 2)).sqlstate() == "42P01");
    BOOST_TEST(export_error(options_for("exp_bad", 2, "nokey")).sqlstate() == "42703");

    const auto not_integer = export_error(options_for("exp_bad", 2, "f"));
    BOOST_TEST(not_integer.sqlstate() == "42804");
    BOOST_TEST(std::string(not_integer.what()).find("\"f\"") != std::string::npos);

    ExportOptions bad_filter = options_for("exp_bad", 2);
    bad_filter.where = "id >";
    BOOST_TEST(export_error(bad_filter).sqlstate() == "42601");

    ExportOptions zero = options_for("exp_bad", 0);
    BOOST_CHECK_THROW(Exporter(test::options(), zero), pg_ingest::Error);
    ExportOptions huge = options_for("exp_bad", std::size_t(1) << 40);
    BOOST_TEST(test::error_of([&] { Exporter(test::options(), huge); }).sqlstate() == "22023");
}

// The export reads one snapshot: rows deleted, changed or added while it runs (here while the
// coordinator computes the key ranges, before any worker has started its COPY) are exported as
// they were when it began, each exactly once.
BOOST_AUTO_TEST_CASE(rows_changed_while_the_export_runs_are_exported_as_they_were) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_snap; CREATE TABLE exp_snap (id int PRIMARY KEY, v text); "
        "INSERT INTO exp_snap SELECT g, 'v' || g FROM generate_series(1, 4000) g");
    const auto expected = expected_rows(connection, "SELECT concat(id, ',', v) FROM exp_snap");
    ExportOptions options = options_for("exp_snap", 4);
    // Evaluated once per statement (an InitPlan): the range query takes a second, and so does
    // each worker's COPY.
    options.where = "(SELECT pg_catalog.pg_sleep(1)) IS NOT NULL";
    Collector collector;
    std::exception_ptr failure;
    std::thread exporter([&] {
        try {
            Exporter(test::options(), options).run(collector.callback());
        } catch (...) {
            failure = std::current_exception();
        }
    });
    // Once the coordinator computes the ranges (its snapshot is taken), change every range.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool seen = false;
    while (!seen && std::chrono::steady_clock::now() < until) {
        seen = *connection
                    .execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                        "'SELECT min(%exp_snap%' AND state = 'active'")
                    .get(0, 0) != "0";
        if (!seen) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    connection.execute(
        "DELETE FROM exp_snap WHERE id % 3 = 0; UPDATE exp_snap SET v = 'changed' WHERE id % 3 = "
        "1; INSERT INTO exp_snap SELECT g, 'new' FROM generate_series(4001, 5000) g");
    exporter.join();
    if (failure) {
        std::rethrow_exception(failure);
    }
    BOOST_TEST(seen);
    BOOST_TEST(sorted(collector.rows) == expected, boost::test_tools::per_element());
}

// A server-side idle_in_transaction_session_timeout would end the coordinator (idle in its
// transaction for the whole export) and a worker whose consumer is still draining rows the
// server has sent: the export must finish, with every row, not fail at its last COMMIT.
BOOST_AUTO_TEST_CASE(an_idle_in_transaction_timeout_does_not_end_the_export) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_idle; CREATE TABLE exp_idle (id int PRIMARY KEY, v text); "
        "INSERT INTO exp_idle SELECT g, 'v' || g FROM generate_series(1, 3000) g");
    const auto expected = expected_rows(connection, "SELECT concat(id, ',', v) FROM exp_idle");
    pg_ingest::ConnectionOptions strict = test::options();
    strict.set("options", "-c idle_in_transaction_session_timeout=200");
    Collector collector;
    const auto slow = [&](std::size_t range, std::string_view row) {
        collector.callback()(range, row);
        std::this_thread::sleep_for(std::chrono::microseconds(500));  // 3000 rows: ~1.5 s
    };
    const auto result = Exporter(strict, options_for("exp_idle", 2)).run(slow);
    BOOST_TEST(result.rows == 3000u);
    BOOST_TEST(sorted(collector.rows) == expected, boost::test_tools::per_element());
}

// The filter goes into the statements as "(where)" next to the range predicates: a top-level
// OR stays inside it, and a filter that closes that parenthesis itself, which would export
// rows of every range again, is refused before anything runs.
BOOST_AUTO_TEST_CASE(a_filter_is_one_expression_inside_the_ranges) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_or; CREATE TABLE exp_or (id int PRIMARY KEY, v text); "
        "INSERT INTO exp_or SELECT g, CASE WHEN g % 5 = 0 THEN ')' ELSE 'v' END "
        "FROM generate_series(1, 2000) g");
    for (const std::string where :
         {"id % 7 = 0 OR id % 11 = 0", "v = ')' OR id < 10", "v = E'\\')' OR id = 1",
          "/* ( */ id = 3 OR v = $x$($x$ -- )", "\"v\" = ')'", "(id = 3 --c\r) OR id = 4"}) {
        BOOST_TEST_CONTEXT("where " << where) {
            ExportOptions options = options_for("exp_or", 4);
            options.where = where;
            Collector collector;
            Exporter(test::options(), options).run(collector.callback());
            const auto expected = expected_rows(
                connection, "SELECT concat(id, ',', v) FROM exp_or WHERE " + where + "\n");
            BOOST_TEST(!expected.empty());
            BOOST_TEST(sorted(collector.rows) == expected, boost::test_tools::per_element());
        }
    }
    for (const std::string where :
         {"id = 1) OR (id = 2", "(id = 1", "id = 1; SELECT 1", "id = 1 --x\r) OR (id = 2",
          "v = 'unterminated", "id = 1 /* open"}) {
        BOOST_TEST_CONTEXT("where " << where) {
            ExportOptions options = options_for("exp_or", 4);
            options.where = where;
            const auto error = test::error_of([&] { Exporter(test::options(), options); });
            BOOST_TEST(error.sqlstate() == "42601");
        }
    }
}

// PostgreSQL allows '$' in a name after its first character: x$$$ is one name, not x and then
// a dollar quote. Behind such names a filter that closes the statements' parenthesis is
// refused, as it is behind the quoted "x$$$" (it would export rows of every range again: 26
// of 14 here), and one that does not is exported once. The same for an E after such a name
// ("v$e'\'" is a name and a plain string) and for dollar quotes and numbers next to names.
BOOST_AUTO_TEST_CASE(a_dollar_inside_a_name_does_not_start_a_dollar_quote) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_dollar; "
        "CREATE TABLE exp_dollar (id int PRIMARY KEY, x$$$ int, v$e text); "
        "INSERT INTO exp_dollar SELECT g, g - 50, 'v' FROM generate_series(1, 100) g");
    for (const std::string where :
         {"x$$$ > 40) OR (x$$$ < -45", "\"x$$$\" > 40) OR (\"x$$$\" < -45",
          "v$e = v$e'\\' ) OR ( id > 0 --'", "x$$$ > 1e1$$) OR ($$"}) {
        BOOST_TEST_CONTEXT("where " << where) {
            ExportOptions options = options_for("exp_dollar", 4);
            options.where = where;
            const auto error = test::error_of([&] { Exporter(test::options(), options); });
            BOOST_TEST(error.sqlstate() == "42601");
        }
    }
    for (const std::string where :
         {"x$$$ > 40 OR x$$$ < -45", "x$$$ = $$1$$::int OR x$$$ = $q$-2$q$::int OR v$e = ')'",
          "x$$$ > 1e1 OR x$$$ < -.45E+2 OR x$$$=0", "v$e <> E'\\' ) OR ( x$$$ > 0 --'"}) {
        BOOST_TEST_CONTEXT("where " << where) {
            ExportOptions options = options_for("exp_dollar", 4);
            options.where = where;
            Collector collector;
            Exporter(test::options(), options).run(collector.callback());
            const auto expected = expected_rows(
                connection,
                "SELECT concat(id, ',', x$$$, ',', v$e) FROM exp_dollar WHERE " + where + "\n");
            BOOST_TEST(sorted(collector.rows) == expected, boost::test_tools::per_element());
        }
    }
}

// 'a'<newline>'b' is one string to the server, in the mode of its first part: a continued
// E'...' keeps its backslash escapes. Read so, the first filter is v <> 'a'' ' ) OR ( id > 0,
// which would export every row once per range: refused. The second, its parenthesis inside
// the continued string, is exported once.
BOOST_AUTO_TEST_CASE(a_string_continued_on_another_line_is_read_as_the_server_reads_it) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_cont; CREATE TABLE exp_cont (id int PRIMARY KEY, v text); "
        "INSERT INTO exp_cont SELECT g, 'v' FROM generate_series(1, 100) g");
    ExportOptions options = options_for("exp_cont", 4);
    options.where = "v <> E'a'\n'\\' ' ) OR ( id > 0 --'";
    const auto error = test::error_of([&] { Exporter(test::options(), options); });
    BOOST_TEST(error.sqlstate() == "42601");
    options.where = "v <> E'a'\n'\\' ) OR ( id > 0 --'";
    Collector collector;
    const auto result = Exporter(test::options(), options).run(collector.callback());
    BOOST_TEST(result.rows == 100u);
    BOOST_TEST(sorted(collector.rows) ==
                   expected_rows(connection, "SELECT concat(id, ',', v) FROM exp_cont WHERE " +
                                                 options.where + "\n"),
               boost::test_tools::per_element());
}

// With standard_conforming_strings off a backslash escapes a quote in '...', so the server
// would read the filter "v = '\' OR v = ') OR (true -- '" as v = '...' ) OR (true and a
// comment: every range would export every row. The check reads it as two strings, and so
// does the export's session, whatever the connection sets.
BOOST_AUTO_TEST_CASE(a_filter_is_read_with_standard_conforming_strings_whatever_the_session_sets) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_scs; CREATE TABLE exp_scs (id int PRIMARY KEY, v text); "
        "INSERT INTO exp_scs SELECT g, 'v' FROM generate_series(1, 1000) g; "
        "INSERT INTO exp_scs VALUES (2000, '\\')");
    pg_ingest::ConnectionOptions off = test::options();
    off.set("options", "-c standard_conforming_strings=off -c escape_string_warning=off");
    ExportOptions options = options_for("exp_scs", 4);
    options.where = "v = '\\' OR v = ') OR (true -- '";
    Collector collector;
    const auto result = Exporter(off, options).run(collector.callback());
    BOOST_TEST(result.rows == 1u);
    BOOST_TEST(
        collector.rows ==
            expected_rows(connection, "SELECT concat(id, ',', v) FROM exp_scs WHERE id = 2000"),
        boost::test_tools::per_element());
}

// In text format a header field escapes what COPY's text format escapes.
BOOST_AUTO_TEST_CASE(a_text_header_escapes_tabs_and_backslashes) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_text; CREATE TABLE exp_text (id int, \"a\tb\" text, "
        "\"c\\d\" text); INSERT INTO exp_text VALUES (1, 'x', 'y')");
    ExportOptions options = options_for("exp_text", 1);
    options.format = "text";
    std::ostringstream out;
    Exporter(test::options(), options).run(out, true);
    BOOST_TEST(out.str() == "id\ta\\tb\tc\\\\d\n1\tx\ty\n");
}

// COPY FROM takes a line holding only \. for the end of the data, in CSV too: COPY TO quotes
// a lone column named \. in its CSV header, and so must the export, or its file reloads empty.
BOOST_AUTO_TEST_CASE(a_csv_header_of_one_column_named_backslash_dot_is_quoted_as_copy_quotes_it) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_eod, exp_eod_reloaded; CREATE TABLE exp_eod (\"\\.\" int); "
        "INSERT INTO exp_eod SELECT generate_series(1, 100); "
        "CREATE TABLE exp_eod_reloaded (LIKE exp_eod)");
    std::ostringstream out;
    Exporter(test::options(), options_for("exp_eod", 2, "\\.")).run(out, true);
    const std::string text = out.str();
    std::string server_header;
    {
        pg_ingest::CopyOut copy(connection, "COPY exp_eod TO STDOUT (FORMAT csv, HEADER)");
        BOOST_REQUIRE(copy.read(server_header));
        std::string row;
        while (copy.read(row)) {
        }
    }
    BOOST_TEST(server_header == "\"\\.\"\n");
    BOOST_TEST(text.substr(0, text.find('\n') + 1) == server_header);
    pg_ingest::CopyIn reload(connection, "COPY exp_eod_reloaded FROM STDIN (FORMAT csv, HEADER)");
    reload.write(text);
    BOOST_TEST(reload.finish().affected_rows() == 100u);
    BOOST_TEST(*connection
                    .execute("SELECT count(*) FROM (SELECT * FROM exp_eod EXCEPT ALL "
                             "SELECT * FROM exp_eod_reloaded) missing")
                    .get(0, 0) == "0");
}

BOOST_AUTO_TEST_CASE(a_throwing_callback_stops_the_export_and_propagates) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_throw; CREATE TABLE exp_throw (id int); "
        "INSERT INTO exp_throw SELECT generate_series(1, 50000)");
    Exporter exporter(test::options(), options_for("exp_throw", 3));
    std::atomic<int> calls{0};
    BOOST_CHECK_THROW(exporter.run([&](std::size_t, std::string_view) {
        if (++calls == 100) {
            throw std::runtime_error("consumer full");
        }
    }),
                      std::runtime_error);
    BOOST_TEST(calls.load() < 50000);
    // The export sessions end (their connections were closed): the server notices within
    // moments, when its next send fails.
    BOOST_TEST(copies_left(connection, "exp_throw", std::chrono::seconds(5)) == "0");
}

// A range whose COPY finds nothing for a long while (a selective, slow filter) is broken off
// when another range fails: the export ends at once, not when that scan finishes (10 s here),
// and the server stops the scan (a cancel request: it sends nothing, so it would not notice a
// closed socket).
BOOST_AUTO_TEST_CASE(a_failure_breaks_off_the_ranges_still_scanning) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_stall; CREATE TABLE exp_stall (id int PRIMARY KEY); "
        "INSERT INTO exp_stall SELECT generate_series(1, 4000)");
    ExportOptions options = options_for("exp_stall", 2);
    // The first range (1..2000) passes at once and its consumer fails; the second
    // (2001..4000) takes 5 ms a row and passes only 4000, its last. The index finds min and
    // max without the sleeps.
    options.where = "id <= 2000 OR id = 4000 OR pg_sleep(0.005) IS NULL";
    const auto start = std::chrono::steady_clock::now();
    BOOST_CHECK_THROW(Exporter(test::options(), options).run([](std::size_t, std::string_view) {
        throw std::runtime_error("consumer full");
    }),
                      std::runtime_error);
    BOOST_TEST(test::elapsed_ms(start) < 4000);
    BOOST_TEST(copies_left(connection, "exp_stall", std::chrono::seconds(3)) == "0");
}

// The deadline bounds the coordinator's own statements too: here the min/max query that
// splits the key range, which evaluates a slow filter on every row (4 s in all).
BOOST_AUTO_TEST_CASE(the_deadline_holds_before_any_copy_starts) {
    auto connection = test::connect();
    connection.execute(
        "DROP TABLE IF EXISTS exp_slow; CREATE TABLE exp_slow (id int); "
        "INSERT INTO exp_slow SELECT generate_series(1, 20)");
    ExportOptions options = options_for("exp_slow", 2);
    options.where = "pg_sleep(0.2) IS NOT NULL";
    const auto start = std::chrono::steady_clock::now();
    options.deadline = start + std::chrono::milliseconds(800);
    Collector rows;
    try {
        Exporter(test::options(), options).run(rows.callback());
        BOOST_FAIL("the export outlived its deadline");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "08006", error.what());
    }
    const long long elapsed = test::elapsed_ms(start);
    BOOST_TEST(elapsed >= 790);
    BOOST_TEST(elapsed < 800 + 1500);
    BOOST_TEST(rows.rows.empty());
}

BOOST_AUTO_TEST_SUITE_END()
