// Writer against a live server: every write mode x conflict mode against a row-at-a-time oracle,
// the extension-less fallback, bad rows, retries after a killed backend, concurrency, timers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/pool.hpp>
#include <pg_ingest/schema.hpp>
#include <pg_ingest/writer.hpp>

#include "test_support.hpp"

using namespace pg_ingest;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<ConnectionPool> make_pool(std::size_t size = 2,
                                          const ConnectionOptions& options = test::options()) {
    return std::make_shared<ConnectionPool>(
        options, ConnectionPool::Settings{size, std::chrono::seconds(5)});
}

// Every row of a table as text, ordered by the first column.
std::vector<std::string> dump(Connection& connection, const std::string& table) {
    const auto result = connection.execute("SELECT t::text FROM " + table + " t ORDER BY 1");
    std::vector<std::string> rows;
    for (std::size_t r = 0; r < result.rows(); ++r) {
        rows.push_back(*result.get(r, 0));
    }
    return rows;
}

std::string scalar(Connection& connection, const std::string& sql) {
    const auto result = connection.execute(sql);
    return result.get(0, 0) ? *result.get(0, 0) : "<null>";
}

// The text of the SQLSTATE an expression throws as pg_ingest::Error.
template <typename F>
std::string error_state(F&& action, std::string* message = nullptr) {
    try {
        action();
    } catch (const Error& error) {
        if (message != nullptr) {
            *message = error.what();
        }
        return error.sqlstate();
    }
    return "<no error>";
}

struct Op {
    bool erase = false;
    int id = 0;
    std::optional<std::string> v;
    int n = 0;
};

// Applies `ops` one at a time, as the conflict mode defines, on the oracle table; rows the
// server refuses are skipped (savepoint), like exceptionmode=ignore. Returns how many it refused.
std::uint64_t apply_oracle(Connection& c, const std::string& table, const std::vector<Op>& ops,
                           ConflictMode mode) {
    std::uint64_t refused = 0;
    c.execute("BEGIN");
    for (const Op& op : ops) {
        const std::string id = std::to_string(op.id);
        Connection::Parameters params{id, op.v, std::to_string(op.n)};
        std::string sql;
        if (op.erase) {
            c.execute_params("DELETE FROM " + table + " WHERE id = $1::int", {id});
            continue;
        }
        switch (mode) {
            case ConflictMode::upsert:
                sql = "INSERT INTO " + table +
                      " VALUES ($1::int, $2, $3::int) ON CONFLICT (id) DO UPDATE SET v = "
                      "EXCLUDED.v, n = EXCLUDED.n";
                break;
            case ConflictMode::ignore:
                sql = "INSERT INTO " + table +
                      " VALUES ($1::int, $2, $3::int) ON CONFLICT DO NOTHING";
                break;
            case ConflictMode::update:
                sql = "UPDATE " + table + " SET v = $2, n = $3::int WHERE id = $1::int";
                break;
            case ConflictMode::strict:
                sql = "INSERT INTO " + table + " VALUES ($1::int, $2, $3::int)";
                break;
        }
        c.execute("SAVEPOINT s");
        try {
            c.execute_params(sql, params);
            c.execute("RELEASE SAVEPOINT s");
        } catch (const Error&) {
            c.execute("ROLLBACK TO SAVEPOINT s");
            ++refused;
        }
    }
    c.execute("COMMIT");
    return refused;
}

// Random operations on keys 0..59: writes and deletes. No CHECK violations here: a refused row
// that superseded an earlier write of its key in the same batch takes that write with it (the
// batch keeps only the winner), which a row-at-a-time oracle cannot model; bad rows are tested
// on their own below. Conflicts in strict mode are rejects the oracle does model.
std::vector<Op> random_ops(std::mt19937& random, int count) {
    std::vector<Op> ops;
    for (int i = 0; i < count; ++i) {
        Op op;
        op.id = static_cast<int>(random() % 60);
        op.erase = random() % 7 == 0;
        if (!op.erase) {
            op.n = static_cast<int>(random() % 1000);
            if (random() % 9 != 0) {
                op.v = "v" + std::to_string(random() % 100) + (random() % 5 == 0 ? "\t\\é\n" : "");
            }
        }
        ops.push_back(op);
    }
    return ops;
}

void create_pair(Connection& c, const std::string& target, const std::string& oracle) {
    for (const auto& name : {target, oracle}) {
        c.execute("DROP TABLE IF EXISTS " + name);
        c.execute("CREATE TABLE " + name +
                  " (id int PRIMARY KEY, v text, n int NOT NULL CHECK (n >= 0))");
        // Existing rows, so that conflicts with the table happen too.
        c.execute("INSERT INTO " + name +
                  " SELECT g, 'old' || g, g FROM generate_series(0, 59, 3) g");
    }
}

// Runs the ops through a writer (small batches so several flushes happen) and the oracle.
void check_against_oracle(const ConnectionOptions& where, WriteMode write_mode,
                          ConflictMode conflict_mode, std::uint32_t seed, const std::string& tag) {
    Connection c = Connection::connect(where, 10s);
    const std::string target = "wr_oracle_t_" + tag;
    const std::string oracle = "wr_oracle_o_" + tag;
    create_pair(c, target, oracle);
    std::mt19937 random(seed);
    const auto ops = random_ops(random, 400);
    const std::uint64_t oracle_refused = apply_oracle(c, oracle, ops, conflict_mode);

    Options options;
    options.write_mode = write_mode;
    options.conflict_mode = conflict_mode;
    options.exception_mode = ExceptionMode::ignore;
    options.batch_size = 37;
    options.batch_write_timeout = 0ms;
    // on_reject runs on the writer's thread for a batch it sends, on this one for an in-batch
    // repeat (strict): counted under a lock, checked here.
    std::mutex reject_mutex;
    std::uint64_t rejected = 0;
    std::uint64_t without_sqlstate = 0;
    WriterHooks hooks;
    hooks.on_reject = [&](const RejectedRow& row) {
        std::lock_guard<std::mutex> lock(reject_mutex);
        ++rejected;
        without_sqlstate += row.sqlstate.empty() ? 1 : 0;
    };
    Writer writer(make_pool(2, where), target, {"id", "v", "n"}, options, hooks);
    for (const Op& op : ops) {
        if (op.erase) {
            writer.erase({op.id});
        } else {
            writer.write({op.id, op.v ? Value(*op.v) : Value(), op.n});
        }
    }
    writer.close();
    BOOST_TEST(dump(c, target) == dump(c, oracle), "mode " << to_string(write_mode) << "/"
                                                           << to_string(conflict_mode) << " seed "
                                                           << seed);
    BOOST_TEST(writer.metrics().rows_rejected == rejected);
    // Each write the oracle's statements refused (strict: a key in the table or written before;
    // also when an erase() of the key follows in the same batch) is reported once, and no other.
    BOOST_TEST(rejected == oracle_refused, "mode " << to_string(write_mode) << "/"
                                                   << to_string(conflict_mode) << " seed " << seed);
    BOOST_TEST(without_sqlstate == 0u);
    BOOST_TEST(writer.metrics().flushes >= 10u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(writer)

BOOST_AUTO_TEST_CASE(every_write_mode_and_conflict_mode_matches_the_row_at_a_time_oracle) {
    const std::uint32_t seed = test::seed();
    BOOST_TEST_MESSAGE("writer oracle seed " << seed << " (PG_INGEST_TEST_SEED to repeat)");
    for (const WriteMode write_mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        for (const ConflictMode conflict_mode : {ConflictMode::upsert, ConflictMode::update,
                                                 ConflictMode::ignore, ConflictMode::strict}) {
            BOOST_TEST_CONTEXT("writemode " << to_string(write_mode) << ", conflictmode "
                                            << to_string(conflict_mode) << ", seed " << seed) {
                check_against_oracle(
                    test::options(), write_mode, conflict_mode, seed,
                    std::string(to_string(write_mode)) + "_" + to_string(conflict_mode));
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(copy_mode_without_the_extension_uses_the_staging_fallback_with_same_result) {
    Connection admin = test::connect();
    if (scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = 'wr_noext'") == "0") {
        admin.execute("CREATE DATABASE wr_noext");
    }
    ConnectionOptions noext = test::options();
    noext.set("dbname", "wr_noext");
    {
        Connection c = Connection::connect(noext, 10s);
        BOOST_TEST_REQUIRE(
            scalar(c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_ingest'") == "0");
        c.execute("CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY)");
        Options options;
        options.batch_write_timeout = 0ms;
        Writer writer(make_pool(1, noext), "probe", {}, options);
        BOOST_TEST(!writer.uses_extension());
    }
    const std::uint32_t seed = test::seed();
    BOOST_TEST_MESSAGE("fallback oracle seed " << seed);
    for (const ConflictMode conflict_mode :
         {ConflictMode::upsert, ConflictMode::update, ConflictMode::ignore, ConflictMode::strict}) {
        BOOST_TEST_CONTEXT("fallback, conflictmode " << to_string(conflict_mode) << ", seed "
                                                     << seed) {
            check_against_oracle(noext, WriteMode::copy, conflict_mode, seed,
                                 std::string("noext_") + to_string(conflict_mode));
        }
    }
}

// 10 rows, 5 of whose keys exist: update leaves the 5 absent ones, ignore the 5 present ones,
// upsert none; every write path (COPY ON CONFLICT, the staging fallback, INSERT statements,
// UPDATE ... FROM VALUES, and row isolation under exceptionmode ignore) counts them.
BOOST_AUTO_TEST_CASE(rows_the_server_leaves_as_they_were_are_counted_as_skipped) {
    ConnectionOptions noext = test::options();
    noext.set("dbname", "wr_noext");
    {
        Connection admin = test::connect();
        if (scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = 'wr_noext'") == "0") {
            admin.execute("CREATE DATABASE wr_noext");
        }
    }
    for (const bool extension : {true, false}) {
        for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
            for (const ConflictMode conflict :
                 {ConflictMode::update, ConflictMode::ignore, ConflictMode::upsert}) {
                for (const ExceptionMode exceptions :
                     {ExceptionMode::strict, ExceptionMode::ignore}) {
                    if (!extension && mode != WriteMode::copy) {
                        continue;  // only copy mode differs without the extension
                    }
                    BOOST_TEST_CONTEXT(
                        (extension ? "" : "no extension, ")
                        << "writemode " << to_string(mode) << ", conflictmode "
                        << to_string(conflict) << ", exceptionmode "
                        << (exceptions == ExceptionMode::ignore ? "ignore" : "strict")) {
                        const ConnectionOptions where = extension ? test::options() : noext;
                        Connection c = Connection::connect(where, 10s);
                        c.execute("DROP TABLE IF EXISTS wr_skipped");
                        c.execute(
                            "CREATE TABLE wr_skipped (id int PRIMARY KEY, v int CHECK (v >= "
                            "0)); INSERT INTO wr_skipped SELECT g, 0 FROM "
                            "generate_series(1, 10) g");
                        Options options;
                        options.write_mode = mode;
                        options.conflict_mode = conflict;
                        options.exception_mode = exceptions;
                        options.batch_write_timeout = 0ms;
                        Writer writer(make_pool(1, where), "wr_skipped", {}, options);
                        for (int id = 6; id <= 15; ++id) {
                            writer.write({id, 100});
                        }
                        if (exceptions == ExceptionMode::ignore) {
                            writer.write({0, -1});  // rejected, not skipped; sorts first
                        }
                        writer.flush();
                        const auto metrics = writer.metrics();
                        const bool bad = exceptions == ExceptionMode::ignore;
                        BOOST_TEST(metrics.rows_out == (bad ? 11u : 10u));
                        // update: a bad row whose key is absent is never checked, so skipped
                        BOOST_TEST(metrics.rows_rejected ==
                                   (bad && conflict != ConflictMode::update ? 1u : 0u));
                        BOOST_TEST(metrics.rows_skipped ==
                                   (conflict == ConflictMode::upsert          ? 0u
                                    : conflict == ConflictMode::update && bad ? 6u
                                                                              : 5u));
                        writer.close();
                    }
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(copy_mode_uses_the_extension_when_it_is_installed) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_ext; CREATE TABLE wr_ext (id int PRIMARY KEY, v text)");
    Options options;
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "wr_ext", {}, options);
    BOOST_TEST(writer.uses_extension());
    BOOST_TEST(writer.key_columns() == std::vector<std::string>{"id"});
    // Strict is an append: plain binary COPY, the key still checked inside a batch.
    options.conflict_mode = ConflictMode::strict;
    options.exception_mode = ExceptionMode::strict;
    Writer append(make_pool(), "wr_ext", {}, options);
    BOOST_TEST(!append.uses_extension());
    BOOST_TEST(append.key_columns() == std::vector<std::string>{"id"});
    append.write({1, "a"});
    BOOST_TEST(error_state([&] { append.write({1, "b"}); }) == "23505");
    append.close();
    Writer again(make_pool(), "wr_ext", {}, options);
    again.write({1, "c"});
    BOOST_TEST(error_state([&] { again.flush(); }) == "23505");
    BOOST_TEST(scalar(c, "SELECT string_agg(v, ',') FROM wr_ext") == "a");
}

BOOST_AUTO_TEST_CASE(every_type_round_trips_through_binary_copy) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_types");
    c.execute(
        "CREATE TABLE wr_types (id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, "
        "f8 double precision, num numeric, num52 numeric(5,2), t text, vc varchar(5), ch char(3), "
        "b boolean, d date, tm time, ts timestamp, tz timestamptz, iv interval, j json, jb jsonb, "
        "u uuid, by bytea, ai int[], at text[], an numeric[])");
    const std::string big = "-" + std::string(300, '9') + "." + std::string(200, '1');
    Options options;
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "WR_TYPES", {}, options);  // case-insensitive table name
    writer.write({1,
                  -32768,
                  INT64_MIN,
                  1.5f,
                  0.1,
                  Numeric(big),
                  Numeric("123.456"),
                  "tab\there\nnew \\ \"q\" é漢😀",
                  u8"ééééé",
                  "ab",
                  true,
                  Date::from_ymd(1, 1, 1),
                  Time::parse("23:59:59.999999"),
                  Timestamp::parse("2024-02-29 12:34:56.000001"),
                  TimestampTz::parse("2024-03-10 17:30:00.123456+05:30"),
                  Interval{1, 2, 3},
                  Json{"{\"a\": [1, 2]}"},
                  Json{"{\"b\": null, \"a\": 1}"},
                  Uuid::parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                  Bytes{std::string("\0\x01\xff", 3)},
                  Array{{Value(1), Value(), Value(-3)}},
                  Array{{Value("a,b"), Value("{}"), Value("\"")}},
                  Array{{Value(Numeric("NaN")), Value(Numeric("1.50"))}}});
    Row nulls(23);
    nulls[0] = 2;
    writer.write(nulls);
    writer.write({3,
                  32767,
                  INT64_MAX,
                  -0.0f,
                  -1e308,
                  Numeric("NaN"),
                  Numeric("-999.99"),
                  "",
                  "",
                  "",
                  false,
                  Date::infinity(),
                  Time::parse("00:00"),
                  Timestamp::minus_infinity(),
                  TimestampTz::infinity(),
                  Interval{-1, -2, -3},
                  Json{"[]"},
                  Json{"\"x\""},
                  Uuid::parse("00000000000000000000000000000000"),
                  Bytes{},
                  Array{},
                  Array{},
                  Array{}});
    writer.close();
    c.execute("SET timezone = 'UTC'");
    c.execute("SET extra_float_digits = 1");
    const auto row1 = c.execute("SELECT * FROM wr_types WHERE id = 1");
    const std::vector<std::string> expected1 = {"1",
                                                "-32768",
                                                "-9223372036854775808",
                                                "1.5",
                                                "0.1",
                                                big,
                                                "123.46",
                                                "tab\there\nnew \\ \"q\" é漢😀",
                                                "ééééé",
                                                "ab ",
                                                "t",
                                                "0001-01-01",
                                                "23:59:59.999999",
                                                "2024-02-29 12:34:56.000001",
                                                "2024-03-10 12:00:00.123456+00",
                                                "3 mons 2 days 00:00:00.000001",
                                                "{\"a\": [1, 2]}",
                                                "{\"a\": 1, \"b\": null}",
                                                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                                                "\\x0001ff",
                                                "{1,NULL,-3}",
                                                "{\"a,b\",\"{}\",\"\\\"\"}",
                                                "{NaN,1.50}"};
    BOOST_TEST_REQUIRE(row1.columns() == expected1.size());
    for (std::size_t i = 0; i < expected1.size(); ++i) {
        BOOST_TEST(row1.get(0, i).value_or("<null>") == expected1[i],
                   "column " << row1.column_name(i));
    }
    const auto row2 = c.execute("SELECT * FROM wr_types WHERE id = 2");
    for (std::size_t i = 1; i < row2.columns(); ++i) {
        BOOST_TEST(row2.is_null(0, i), "column " << row2.column_name(i));
    }
    const auto row3 = c.execute("SELECT * FROM wr_types WHERE id = 3");
    const std::vector<std::string> expected3 = {"3",
                                                "32767",
                                                "9223372036854775807",
                                                "-0",
                                                "-1e+308",
                                                "NaN",
                                                "-999.99",
                                                "",
                                                "",
                                                "   ",
                                                "f",
                                                "infinity",
                                                "00:00:00",
                                                "-infinity",
                                                "infinity",
                                                "-3 mons -2 days -00:00:00.000001",
                                                "[]",
                                                "\"x\"",
                                                "00000000-0000-0000-0000-000000000000",
                                                "\\x",
                                                "{}",
                                                "{}",
                                                "{}"};
    for (std::size_t i = 0; i < expected3.size(); ++i) {
        BOOST_TEST(row3.get(0, i).value_or("<null>") == expected3[i],
                   "column " << row3.column_name(i));
    }
}

BOOST_AUTO_TEST_CASE(arrays_of_every_scalar_type_round_trip_through_binary_copy) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_arrays");
    c.execute(
        "CREATE TABLE wr_arrays (id int PRIMARY KEY, i2 smallint[], i8 bigint[], f4 real[], "
        "f8 double precision[], vc varchar(5)[], ch char(3)[], b boolean[], d date[], "
        "tm time[], ts timestamp[], tz timestamptz[], iv interval[], j json[], jb jsonb[], "
        "u uuid[], by bytea[])");
    Options options;
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "wr_arrays", {}, options);
    writer.write({1, Array{{Value(1), Value(), Value(-32768)}},
                  Array{{Value(INT64_MIN), Value(std::int64_t{0})}},
                  Array{{Value(1.5f), Value(-0.0f)}}, Array{{Value(0.1), Value(-1e308), Value()}},
                  Array{{Value("ab"), Value(u8"ééééé")}}, Array{{Value("ab"), Value("")}},
                  Array{{Value(true), Value(false), Value()}},
                  Array{{Value(Date::from_ymd(2024, 2, 29)), Value(Date::infinity())}},
                  Array{{Value(Time::parse("23:59:59.999999"))}},
                  Array{{Value(Timestamp::parse("2024-02-29 12:34:56.000001")),
                         Value(Timestamp::minus_infinity())}},
                  Array{{Value(TimestampTz::parse("2024-03-10 17:30:00.123456+05:30"))}},
                  Array{{Value(Interval{1, 2, 3}), Value(Interval{-1, -2, -3})}},
                  Array{{Value(Json{"{\"a\": [1, 2]}"}), Value()}},
                  Array{{Value(Json{"{\"b\": null, \"a\": 1}"})}},
                  Array{{Value(Uuid::parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))}},
                  Array{{Value(Bytes{std::string("\0\x01\xff", 3)}), Value(Bytes{})}}});
    writer.close();
    // The same values written by the server from literals: every column must read back alike.
    c.execute(
        "INSERT INTO wr_arrays VALUES (2, '{1,NULL,-32768}', '{-9223372036854775808,0}', "
        "'{1.5,-0}', '{0.1,-1e308,NULL}', '{ab,ééééé}', '{ab,\"\"}', '{t,f,NULL}', "
        "'{2024-02-29,infinity}', '{23:59:59.999999}', "
        "'{\"2024-02-29 12:34:56.000001\",-infinity}', "
        "ARRAY['2024-03-10 17:30:00.123456+05:30'::timestamptz], "
        "ARRAY['3 mons 2 days 00:00:00.000001'::interval, '-3 mons -2 days -00:00:00.000001'], "
        "ARRAY['{\"a\": [1, 2]}'::json, NULL], ARRAY['{\"b\": null, \"a\": 1}'::jsonb], "
        "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', ARRAY['\\x0001ff'::bytea, '\\x'])");
    c.execute("SET extra_float_digits = 1");
    const auto written = c.execute("SELECT * FROM wr_arrays WHERE id = 1");
    const auto literal = c.execute("SELECT * FROM wr_arrays WHERE id = 2");
    BOOST_TEST_REQUIRE(written.columns() == 17u);
    for (std::size_t i = 1; i < written.columns(); ++i) {
        BOOST_TEST(written.get(0, i).value_or("<null>") == literal.get(0, i).value_or("<null>"),
                   "column " << written.column_name(i));
    }
}

BOOST_AUTO_TEST_CASE(keys_dedupe_on_typed_bytes_and_microseconds_stay_distinct) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_dedupe");
    c.execute("CREATE TABLE wr_dedupe (k timestamptz PRIMARY KEY, v int)");
    Options options;
    options.write_mode = WriteMode::upsert;  // a repeated key in one INSERT would fail (21000)
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "wr_dedupe", {}, options);
    const auto base = TimestampTz::parse("2024-01-01 00:00:00Z");
    writer.write({base, 1});
    writer.write({TimestampTz{base.microseconds + 1}, 2});
    writer.write({TimestampTz::parse("2024-01-01 05:00:00+05:00"), 3});  // same instant as base
    writer.erase({TimestampTz{base.microseconds + 1}});
    writer.write({TimestampTz{base.microseconds + 2}, 4});
    writer.flush();
    const auto metrics = writer.metrics();
    BOOST_TEST(metrics.rows_deduplicated == 2u);
    BOOST_TEST(metrics.rows_out == 2u);
    BOOST_TEST(metrics.deletes_out == 1u);
    c.execute("SET timezone = 'UTC'");
    BOOST_TEST(dump(c, "wr_dedupe") ==
               (std::vector<std::string>{"(\"2024-01-01 00:00:00+00\",3)",
                                         "(\"2024-01-01 00:00:00.000002+00\",4)"}));
}

// conflictmode upsert with updatecolumns: a key written several times in one batch ends as
// writing the rows one at a time ends (INSERT ... ON CONFLICT DO UPDATE SET the update
// columns): the first write's other columns, the last write's update columns; an erase in
// between starts the key afresh; an existing key gets only the update columns. In every write
// mode, with exceptionmode strict and ignore (which keeps the rows' values for reports).
BOOST_AUTO_TEST_CASE(repeated_keys_with_update_columns_keep_the_first_writes_other_columns) {
    Connection c = test::connect();
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        for (const ExceptionMode exceptions : {ExceptionMode::strict, ExceptionMode::ignore}) {
            BOOST_TEST_CONTEXT("writemode "
                               << to_string(mode) << ", exceptionmode "
                               << (exceptions == ExceptionMode::strict ? "strict" : "ignore")) {
                c.execute("DROP TABLE IF EXISTS wr_partial");
                c.execute("CREATE TABLE wr_partial (id int PRIMARY KEY, a int, b text, n int)");
                c.execute("INSERT INTO wr_partial VALUES (4, 0, 'existing', 0)");
                Options options;
                options.write_mode = mode;
                options.conflict_mode = ConflictMode::upsert;
                options.exception_mode = exceptions;
                options.update_columns = {"a", "n"};
                options.batch_write_timeout = 0ms;
                Writer writer(make_pool(), "wr_partial", {}, options);
                writer.write({1, 10, std::string("first"), 1});
                writer.write({1, 20, std::string("second"), 2});
                writer.write({1, 30, Value(), Value()});
                writer.write({2, 1, std::string("gone"), 1});
                writer.erase({2});
                writer.write({2, 2, std::string("again"), 2});
                writer.write({2, 3, std::string("later"), 3});
                writer.write({4, 5, std::string("new b"), 5});
                writer.write({4, 6, std::string("newer b"), 6});
                writer.close();
                BOOST_TEST(dump(c, "wr_partial") ==
                           (std::vector<std::string>{"(1,30,first,)", "(2,3,again,3)",
                                                     "(4,6,existing,6)"}));
            }
        }
    }
}

// timestamp(0) and time(2) keys: the server rounds 10:00:00.4 and 10:00:00.3 to one key, so the
// batch holds one row for it and the later write wins, in every write mode with keys.
BOOST_AUTO_TEST_CASE(keys_rounded_by_their_column_precision_dedupe_as_on_the_server) {
    for (const WriteMode mode : {WriteMode::copy, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            Connection c = test::connect();
            c.execute("DROP TABLE IF EXISTS wr_rounded");
            c.execute(
                "CREATE TABLE wr_rounded (k timestamp(0), tm time(2), v int, "
                "PRIMARY KEY (k, tm))");
            Options options;
            options.write_mode = mode;
            options.batch_write_timeout = 0ms;
            Writer writer(make_pool(), "wr_rounded", {}, options);
            const auto ten = Timestamp::parse("2024-01-01 10:00:00");
            writer.write({Timestamp{ten.microseconds + 400000}, Time{1000}, 1});
            writer.write({Timestamp{ten.microseconds + 300000}, Time{4000}, 2});  // same key
            writer.write({Timestamp{ten.microseconds + 500000}, Time{1000}, 3});  // 10:00:01
            writer.flush();
            BOOST_TEST(writer.metrics().rows_deduplicated == 1u);
            BOOST_TEST(dump(c, "wr_rounded") ==
                       (std::vector<std::string>{"(\"2024-01-01 10:00:00\",00:00:00,2)",
                                                 "(\"2024-01-01 10:00:01\",00:00:00,3)"}));
            // timestamp(0)[] keys: each element is rounded the same way.
            c.execute("DROP TABLE IF EXISTS wr_rounded_array");
            c.execute("CREATE TABLE wr_rounded_array (k timestamp(0)[] PRIMARY KEY, v int)");
            Writer arrays(make_pool(), "wr_rounded_array", {}, options);
            const auto at = [&](std::int64_t micros) { return Value(Timestamp{micros}); };
            arrays.write({Array{{at(ten.microseconds + 400000), Value()}}, 1});
            arrays.write({Array{{at(ten.microseconds + 300000), Value()}}, 2});  // same key
            arrays.write({Array{{at(ten.microseconds + 500000), Value()}}, 3});
            arrays.flush();
            BOOST_TEST(arrays.metrics().rows_deduplicated == 1u);
            BOOST_TEST(dump(c, "wr_rounded_array") ==
                       (std::vector<std::string>{"(\"{\"\"2024-01-01 10:00:00\"\",NULL}\",2)",
                                                 "(\"{\"\"2024-01-01 10:00:01\"\",NULL}\",3)"}));
            arrays.erase({Array{{at(ten.microseconds + 1400000), Value()}}});
            arrays.flush();
            BOOST_TEST(dump(c, "wr_rounded_array") ==
                       (std::vector<std::string>{"(\"{\"\"2024-01-01 10:00:00\"\",NULL}\",2)"}));
            // Statements compare their parameters unrounded: erase() and an update send the
            // key rounded, so they find the rows COPY or INSERT stored.
            Options update = options;
            update.write_mode = WriteMode::insert;
            update.conflict_mode = ConflictMode::update;
            Writer updater(make_pool(), "wr_rounded", {}, update);
            updater.write({Timestamp{ten.microseconds + 300000}, Time{2000}, 7});
            updater.erase({Timestamp{ten.microseconds + 1400000}, Time{3000}});
            updater.flush();
            BOOST_TEST(updater.metrics().rows_skipped == 0u);
            BOOST_TEST(dump(c, "wr_rounded") ==
                       (std::vector<std::string>{"(\"2024-01-01 10:00:00\",00:00:00,7)"}));
        }
    }
}

// conflictmode strict, as one operation at a time: a write of a key that is in the table fails
// (23505) also when an erase() of the key follows it in the same batch (the batch keeps only the
// erase and what follows); a key that is not in the table is written, erased and written again
// without an error.
BOOST_AUTO_TEST_CASE(strict_a_write_superseded_by_an_erase_still_fails_on_an_existing_key) {
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            Connection c = test::connect();
            const auto reset = [&] {
                c.execute(
                    "DROP TABLE IF EXISTS wr_superseded; "
                    "CREATE TABLE wr_superseded (id int PRIMARY KEY, v text CHECK (v <> 'bad')); "
                    "INSERT INTO wr_superseded VALUES (1, 'old 1'), (2, 'old 2')");
            };
            reset();
            Options options;
            options.write_mode = mode;
            options.conflict_mode = ConflictMode::strict;
            options.exception_mode = ExceptionMode::ignore;
            options.batch_write_timeout = 0ms;
            std::vector<RejectedRow> rejects;
            WriterHooks hooks;
            hooks.on_reject = [&](const RejectedRow& row) { rejects.push_back(row); };
            {
                Writer writer(make_pool(), "wr_superseded", {}, options, hooks);
                writer.write({1, "a"});  // row 1: key 1 is in the table
                writer.erase({1});       // row 2
                writer.write({1, "b"});  // row 3
                writer.write({3, "c"});  // row 4: a new key
                writer.erase({3});       // row 5
                writer.write({3, "d"});  // row 6
                writer.write({2, "e"});  // row 7: key 2 is in the table
                writer.erase({2});       // row 8
                writer.close();
                BOOST_TEST(writer.metrics().rows_rejected == 2u);
                BOOST_TEST(writer.metrics().rows_skipped == 0u);
                // Row 4 was superseded by row 5 (its key was not in the table); rows 1 and 7
                // were rejected, not deduplicated.
                BOOST_TEST(writer.metrics().rows_deduplicated == 1u);
            }
            BOOST_TEST(dump(c, "wr_superseded") == (std::vector<std::string>{"(1,b)", "(3,d)"}));
            BOOST_TEST_REQUIRE(rejects.size() == 2u);
            BOOST_TEST(rejects[0].row_number == 1u);
            BOOST_TEST(rejects[1].row_number == 7u);
            for (const auto& reject : rejects) {
                BOOST_TEST(reject.sqlstate == "23505");
                BOOST_TEST(!reject.is_delete);
                BOOST_TEST(reject.message.find("already in table") != std::string::npos,
                           reject.message);
                BOOST_TEST(reject.values.size() == 2u);
            }
            BOOST_TEST((rejects[0].values[1] == Value("a")));

            // exceptionmode strict: the batch fails naming the first such write, and nothing of
            // it is committed.
            reset();
            options.exception_mode = ExceptionMode::strict;
            Writer writer(make_pool(), "wr_superseded", {}, options);
            writer.write({4, "new"});
            writer.write({2, "x"});  // row 2: key 2 is in the table
            writer.erase({2});
            writer.write({2, "y"});
            std::string message;
            BOOST_TEST(error_state([&] { writer.flush(); }, &message) == "23505");
            BOOST_TEST(message.find("row 2 ") == 0u, message);
            BOOST_TEST(dump(c, "wr_superseded") ==
                       (std::vector<std::string>{"(1,\"old 1\")", "(2,\"old 2\")"}));
            BOOST_TEST(writer.metrics().rows_discarded == 4u);

            // One operation at a time, a row that fails on its own before the superseded write
            // fails first: that one is named.
            reset();
            Writer first_bad(make_pool(), "wr_superseded", {}, options);
            first_bad.write({5, "bad"});  // row 1: its own CHECK
            first_bad.write({2, "x"});    // row 2: key 2 is in the table
            first_bad.erase({2});
            message.clear();
            BOOST_TEST(error_state([&] { first_bad.flush(); }, &message) == "23514");
            BOOST_TEST(message.find("row 1 ") == 0u, message);
            Writer superseded_first(make_pool(), "wr_superseded", {}, options);
            superseded_first.write({2, "x"});  // row 1: key 2 is in the table
            superseded_first.erase({2});
            superseded_first.write({5, "bad"});  // row 3: its own CHECK
            message.clear();
            BOOST_TEST(error_state([&] { superseded_first.flush(); }, &message) == "23505");
            BOOST_TEST(message.find("row 1 ") == 0u, message);
            BOOST_TEST(dump(c, "wr_superseded") ==
                       (std::vector<std::string>{"(1,\"old 1\")", "(2,\"old 2\")"}));
        }
    }
}

// Without a unique index on the key (conflictcolumns naming plain columns, insert mode) a write
// of a key the table holds does not fail one operation at a time, so neither does one that an
// erase() supersedes.
BOOST_AUTO_TEST_CASE(strict_a_superseded_write_on_a_key_without_unique_index_is_not_refused) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_nounique; CREATE TABLE wr_nounique (id int, v text); "
        "INSERT INTO wr_nounique VALUES (1, 'old')");
    Options options;
    options.write_mode = WriteMode::insert;
    options.conflict_mode = ConflictMode::strict;
    options.exception_mode = ExceptionMode::strict;
    options.conflict_columns = {"id"};
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "wr_nounique", {}, options);
    writer.write({1, "a"});
    writer.erase({1});
    writer.write({2, "b"});
    writer.close();
    BOOST_TEST(dump(c, "wr_nounique") == (std::vector<std::string>{"(2,b)"}));
    BOOST_TEST(writer.metrics().rows_rejected == 0u);
}

BOOST_AUTO_TEST_CASE(ignore_mode_loads_every_good_row_and_reports_each_bad_row_once) {
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            Connection c = test::connect();
            c.execute("DROP TABLE IF EXISTS wr_ignore");
            c.execute("CREATE TABLE wr_ignore (id int PRIMARY KEY, n int CHECK (n >= 0))");
            Options options;
            options.write_mode = mode;
            options.exception_mode = ExceptionMode::ignore;
            options.batch_write_timeout = 0ms;
            std::vector<RejectedRow> rejects;
            WriterHooks hooks;
            hooks.on_reject = [&](const RejectedRow& row) { rejects.push_back(row); };
            Writer writer(make_pool(), "wr_ignore", {}, options, hooks);
            std::set<std::uint64_t> bad_rows;
            for (int i = 1; i <= 200; ++i) {
                const bool bad = i % 29 == 0 || i == 1 || i == 200;
                if (bad) {
                    bad_rows.insert(static_cast<std::uint64_t>(i));
                }
                writer.write({i, bad ? -i : i});
            }
            writer.close();
            BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_ignore") ==
                       std::to_string(200 - bad_rows.size()));
            BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_ignore WHERE n < 0") == "0");
            std::set<std::uint64_t> reported;
            for (const auto& reject : rejects) {
                BOOST_TEST(reject.sqlstate == "23514");
                BOOST_TEST(reject.message.find("check") != std::string::npos, reject.message);
                BOOST_TEST(reported.insert(reject.row_number).second, "reported twice");
                BOOST_TEST(reject.values.size() == 2u);
            }
            BOOST_TEST(reported == bad_rows);
            BOOST_TEST(writer.metrics().rows_rejected == bad_rows.size());
        }
    }
}

// A row too large for a btree index fails with 54000, not a data class: in ignore mode it is
// a bad row like any other, and the batch does not come back on every flush.
BOOST_AUTO_TEST_CASE(ignore_mode_rejects_a_row_too_large_for_an_index) {
    for (const WriteMode mode : {WriteMode::copy, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            Connection c = test::connect();
            c.execute(
                "DROP TABLE IF EXISTS wr_large; "
                "CREATE TABLE wr_large (id int PRIMARY KEY, t text); CREATE INDEX ON wr_large (t)");
            Options options;
            options.write_mode = mode;
            options.exception_mode = ExceptionMode::ignore;
            options.batch_write_timeout = 0ms;
            std::vector<RejectedRow> rejects;
            WriterHooks hooks;
            hooks.on_reject = [&](const RejectedRow& row) { rejects.push_back(row); };
            Writer writer(make_pool(), "wr_large", {}, options, hooks);
            std::mt19937 random(7);  // fixed: only needs to be incompressible
            std::string large;
            for (int i = 0; i < 40000; ++i) {
                large += static_cast<char>('!' + random() % 90);
            }
            for (int i = 1; i <= 20; ++i) {
                writer.write({i, i == 13 ? large : "row " + std::to_string(i)});
            }
            writer.close();
            BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_large") == "19");
            BOOST_TEST_REQUIRE(rejects.size() == 1u);
            BOOST_TEST(rejects[0].row_number == 13u);
            BOOST_TEST(rejects[0].sqlstate == "54000", rejects[0].message);
            BOOST_TEST(writer.metrics().rows_rejected == 1u);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_throwing_reject_callback_still_hears_of_every_row_and_the_batch_stays) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_reject_throw");
    c.execute("CREATE TABLE wr_reject_throw (id int PRIMARY KEY, n int CHECK (n >= 0))");
    Options options;
    options.exception_mode = ExceptionMode::ignore;
    options.batch_write_timeout = 0ms;
    std::vector<std::uint64_t> heard;
    WriterHooks hooks;
    hooks.on_reject = [&](const RejectedRow& row) {
        heard.push_back(row.row_number);
        throw std::runtime_error("callback failed on row " + std::to_string(row.row_number));
    };
    Writer writer(make_pool(), "wr_reject_throw", {}, options, hooks);
    for (int i = 1; i <= 10; ++i) {
        writer.write({i, i % 3 == 0 ? -1 : i});  // rows 3, 6 and 9 are bad
    }
    try {
        writer.flush();
        BOOST_FAIL("the callback's exception was swallowed");
    } catch (const std::runtime_error& error) {
        BOOST_TEST(std::string(error.what()) == "callback failed on row 3");
    }
    std::sort(heard.begin(), heard.end());
    BOOST_TEST(heard == (std::vector<std::uint64_t>{3, 6, 9}));
    // Committed once, not re-sent by the next flush.
    writer.write({11, 11});
    writer.close();
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_reject_throw") == "8");
    BOOST_TEST(heard.size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_deferred_constraint_broken_at_commit_is_pinned_on_its_row) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_deferred, wr_parent");
    c.execute("CREATE TABLE wr_parent (id int PRIMARY KEY)");
    c.execute("INSERT INTO wr_parent SELECT generate_series(1, 10)");
    c.execute(
        "CREATE TABLE wr_deferred (id int PRIMARY KEY, parent int REFERENCES wr_parent "
        "DEFERRABLE INITIALLY DEFERRED)");
    for (const ExceptionMode mode : {ExceptionMode::ignore, ExceptionMode::strict}) {
        c.execute("TRUNCATE wr_deferred");
        Options options;
        options.exception_mode = mode;
        options.batch_write_timeout = 0ms;
        std::vector<RejectedRow> rejects;
        WriterHooks hooks;
        hooks.on_reject = [&](const RejectedRow& row) { rejects.push_back(row); };
        Writer writer(make_pool(), "wr_deferred", {}, options, hooks);
        for (int i = 1; i <= 10; ++i) {
            writer.write({i, i == 4 ? 99 : i});  // row 4 names no parent
        }
        if (mode == ExceptionMode::ignore) {
            writer.close();
            BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_deferred") == "9");
            BOOST_TEST_REQUIRE(rejects.size() == 1u);
            BOOST_TEST(rejects[0].row_number == 4u);
            BOOST_TEST(rejects[0].sqlstate == "23503");
        } else {
            std::string message;
            BOOST_TEST(error_state([&] { writer.flush(); }, &message) == "23503");
            BOOST_TEST(message.find("row 4") != std::string::npos, message);
            BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_deferred") == "0");
        }
    }
}

BOOST_AUTO_TEST_CASE(strict_exception_mode_names_the_bad_row_and_commits_nothing_of_the_batch) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_strict");
    c.execute("CREATE TABLE wr_strict (id int PRIMARY KEY, n int CHECK (n >= 0))");
    Options options;
    options.exception_mode = ExceptionMode::strict;
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "wr_strict", {}, options);
    for (int i = 1; i <= 50; ++i) {
        writer.write({i, i == 17 ? -1 : i});
    }
    try {
        writer.flush();
        BOOST_FAIL("a CHECK violation in strict mode did not throw");
    } catch (const Error& error) {
        BOOST_TEST(error.sqlstate() == "23514");
        BOOST_TEST(error.row_number() == 17u);
        BOOST_TEST(std::string(error.what()).find("row 17") != std::string::npos, error.what());
    }
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_strict") == "0");
    BOOST_TEST(writer.metrics().rows_discarded == 50u);
    // The writer stays usable for the next batch.
    writer.write({100, 1});
    writer.close();
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_strict") == "1");
}

BOOST_AUTO_TEST_CASE(strict_conflict_mode_writes_a_table_whose_key_it_does_not_write) {
    // A serial key filled by the server: strict inserts need no key of their own.
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_serial");
    c.execute("CREATE TABLE wr_serial (id serial PRIMARY KEY, v text UNIQUE)");
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        Options options;
        options.write_mode = mode;
        options.conflict_mode = ConflictMode::strict;
        options.batch_write_timeout = 0ms;
        Writer writer(make_pool(), "wr_serial", {"v"}, options);
        BOOST_TEST(writer.key_columns().empty());
        for (int i = 0; i < 100; ++i) {
            writer.write({"m" + std::to_string(static_cast<int>(mode)) + "-" + std::to_string(i)});
        }
        writer.close();
    }
    BOOST_TEST(scalar(c, "SELECT count(*) || '/' || count(DISTINCT id) FROM wr_serial") ==
               "300/300");
    // Other conflict modes still need the key among the written columns.
    Options upsert;
    upsert.conflict_mode = ConflictMode::upsert;
    std::string message;
    BOOST_TEST(error_state([&] { Writer w(make_pool(), "wr_serial", {"v"}, upsert); }, &message) ==
               "42P10");
    BOOST_TEST(message.find("\"id\"") != std::string::npos, message);
}

BOOST_AUTO_TEST_CASE(a_backend_killed_mid_copy_is_retried_to_the_exact_final_state) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_killed");
    c.execute("CREATE TABLE wr_killed (id int PRIMARY KEY, v text)");
    c.execute("INSERT INTO wr_killed SELECT g, 'old' FROM generate_series(0, 999) g");
    // Holds every load statement for a moment so that the kill lands inside it.
    c.execute(
        "CREATE FUNCTION wr_killed_pause() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END$$");
    c.execute(
        "CREATE TRIGGER pause BEFORE INSERT ON wr_killed FOR EACH STATEMENT EXECUTE FUNCTION "
        "wr_killed_pause()");
    ConnectionOptions victim = test::options();
    victim.set("application_name", "wr_killed_victim");
    Options options;
    options.max_retry_times = 3;
    options.retry_wait_time = 50ms;
    options.batch_write_timeout = 0ms;
    std::vector<std::string> logs;
    std::mutex log_mutex;
    WriterHooks hooks;
    hooks.on_log = [&](LogLevel, const std::string& line) {
        std::lock_guard<std::mutex> lock(log_mutex);
        logs.push_back(line);
    };
    Writer writer(make_pool(1, victim), "wr_killed", {"id", "v"}, options, hooks);
    for (int i = 500; i < 3000; ++i) {
        writer.write({i, "new" + std::to_string(i)});
    }
    for (int i = 0; i < 100; ++i) {
        writer.erase({i});
    }
    std::atomic<bool> killed{false};
    std::thread killer([&] {
        Connection k = test::connect();
        const auto until = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < until) {
            const auto hit = k.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                "'wr_killed_victim' AND state = 'active' AND query LIKE 'COPY%'");
            if (hit.rows() > 0 && hit.get(0, 0) == std::optional<std::string>("t")) {
                killed = true;
                return;
            }
            std::this_thread::sleep_for(5ms);
        }
    });
    writer.flush();
    killer.join();
    BOOST_TEST_REQUIRE(killed.load());
    BOOST_TEST(writer.metrics().retries >= 1u);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_killed") == "2900");
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_killed WHERE id < 100") == "0");
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_killed WHERE v = 'old'") == "400");
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_killed WHERE id >= 500 AND v = 'new' || id") ==
               "2500");
    bool warned = false;
    for (const auto& line : logs) {
        warned = warned || line.find("retry 1") != std::string::npos;
        BOOST_TEST(line.find("password") == std::string::npos);
    }
    BOOST_TEST(warned);
}

// Four writers over 400 keys, 3000 operations each, in batches of 150; with `erase_one_in` > 0
// about one operation in that many is an erase() (CDC delete). No retries are allowed, so a
// deadlock fails the writer. Every key must end as the last operation of one writer that
// touched it: within a writer a batch keeps the last operation of a key and batches commit in
// order; between writers any order.
static std::uint64_t run_four_writers(WriteMode mode, int erase_one_in, int max_retries) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_parallel");
    c.execute("CREATE TABLE wr_parallel (id int PRIMARY KEY, v int, who int)");
    const std::uint32_t seed = test::seed();
    BOOST_TEST_MESSAGE("parallel seed " << seed);
    auto pool = make_pool(4);
    // Per writer: key -> the sequence number of its last operation on the key (v of a write), or
    // -1 when that was an erase.
    std::vector<std::map<int, int>> last_op(4);
    std::vector<std::string> failures(4);
    std::vector<std::uint64_t> retries(4);
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, w] {
            try {
                std::mt19937 random(seed + static_cast<std::uint32_t>(w));
                Options options;
                options.write_mode = mode;
                options.batch_size = 150;
                options.batch_write_timeout = 0ms;
                options.max_retry_times = max_retries;
                options.retry_wait_time = 10ms;
                Writer writer(pool, "wr_parallel", {}, options);
                for (int i = 0; i < 3000; ++i) {
                    const int id = static_cast<int>(random() % 400);
                    if (erase_one_in > 0 && static_cast<int>(random() % erase_one_in) == 0) {
                        last_op[static_cast<std::size_t>(w)][id] = -1;
                        writer.erase({id});
                    } else {
                        last_op[static_cast<std::size_t>(w)][id] = i;
                        writer.write({id, i, w});
                    }
                }
                writer.close();
                retries[static_cast<std::size_t>(w)] = writer.metrics().retries;
            } catch (const pg_ingest::Error& error) {
                failures[static_cast<std::size_t>(w)] = std::string(error.what()) +
                                                        (error.detail().empty() ? "" : ": ") +
                                                        error.detail();
            } catch (const std::exception& error) {
                failures[static_cast<std::size_t>(w)] = error.what();
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (int w = 0; w < 4; ++w) {
        BOOST_TEST(failures[static_cast<std::size_t>(w)].empty(),
                   "writer " << w << ": " << failures[static_cast<std::size_t>(w)]);
        if (max_retries == 0) {
            BOOST_TEST(retries[static_cast<std::size_t>(w)] == 0u);
        }
    }
    std::map<int, std::vector<int>> touched;  // key -> each writer's last operation on it
    for (const auto& ops : last_op) {
        for (const auto& [id, last] : ops) {
            touched[id].push_back(last);
        }
    }
    const auto rows = c.execute("SELECT id, v, who FROM wr_parallel ORDER BY id");
    std::set<int> present;
    for (std::size_t r = 0; r < rows.rows(); ++r) {
        const int id = std::stoi(*rows.get(r, 0));
        const int who = std::stoi(*rows.get(r, 2));
        present.insert(id);
        BOOST_REQUIRE(who >= 0 && who < 4);
        const auto& mine = last_op[static_cast<std::size_t>(who)];
        const auto last = mine.find(id);
        BOOST_TEST_REQUIRE((last != mine.end()), "key " << id << " attributed to writer " << who
                                                        << " that never wrote it");
        BOOST_TEST(std::stoi(*rows.get(r, 1)) == last->second,
                   "key " << id << " holds write " << *rows.get(r, 1) << " of writer " << who
                          << ", whose last operation on it was " << last->second);
    }
    for (const auto& [id, lasts] : touched) {
        if (present.count(id) == 0) {
            BOOST_TEST((std::find(lasts.begin(), lasts.end(), -1) != lasts.end()),
                       "key " << id << " is missing, but no writer's last operation erased it");
        }
    }
    if (erase_one_in > 0) {
        BOOST_TEST(present.size() < touched.size());  // some erase took effect
    }
    std::uint64_t total = 0;
    for (const std::uint64_t r : retries) {
        total += r;
    }
    return total;
}

BOOST_AUTO_TEST_CASE(four_writers_upserting_overlapping_keys_never_deadlock_and_match_the_model) {
    // insert: multi-row INSERT, a batch that meets existing keys sent again with ON CONFLICT.
    for (const WriteMode mode : {WriteMode::copy, WriteMode::upsert, WriteMode::insert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            run_four_writers(mode, 0, 0);
        }
    }
}

// Two writers whose batches delete the key the other one writes: each batch's DELETE runs before
// its writes, and an AFTER DELETE trigger that sleeps makes both DELETEs happen before either
// write. Without the batch's lock of its keys first (Writer::Impl::lock_keys) each writer then
// waits for the row the other deleted: a deadlock. No retries are allowed.
BOOST_AUTO_TEST_CASE(writers_deleting_each_others_written_keys_do_not_deadlock) {
    for (const WriteMode mode : {WriteMode::copy, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            Connection c = test::connect();
            c.execute("DROP TABLE IF EXISTS wr_cross");
            c.execute("CREATE TABLE wr_cross (id int PRIMARY KEY, who text)");
            c.execute(
                "CREATE OR REPLACE FUNCTION wr_cross_slow() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN PERFORM pg_sleep(1); RETURN NULL; END$$");
            c.execute(
                "CREATE TRIGGER slow AFTER DELETE ON wr_cross FOR EACH ROW EXECUTE FUNCTION "
                "wr_cross_slow()");
            c.execute("INSERT INTO wr_cross VALUES (3, 'old'), (5, 'old')");
            auto pool = make_pool(2);
            Options options;
            options.write_mode = mode;
            options.batch_write_timeout = 0ms;
            options.max_retry_times = 0;
            Writer a(pool, "wr_cross", {}, options);
            Writer b(pool, "wr_cross", {}, options);
            a.erase({5});
            a.write({3, "a"});
            b.erase({3});
            b.write({5, "b"});
            std::string failed_a, failed_b;
            const auto flush = [](Writer& writer, std::string& failed) {
                try {
                    writer.flush();
                } catch (const std::exception& error) {
                    failed = error.what();
                }
            };
            std::thread ta(flush, std::ref(a), std::ref(failed_a));
            std::thread tb(flush, std::ref(b), std::ref(failed_b));
            ta.join();
            tb.join();
            BOOST_TEST(failed_a.empty(), "writer a: " << failed_a);
            BOOST_TEST(failed_b.empty(), "writer b: " << failed_b);
            // Either order of the two batches: the second one's delete removes the first one's
            // write, and only the second one's write is left.
            const std::string rows =
                scalar(c, "SELECT string_agg(id || ':' || who, ',' ORDER BY id) FROM wr_cross");
            BOOST_TEST((rows == "3:a" || rows == "5:b"), "rows " << rows);
            a.close();
            b.close();
        }
    }
}

// erase() and write() in one batch under load: the lock first leaves only rare deadlocks (a row
// that another writer inserts after the lock), which are retried here; the end state must match
// the model. Measured with this test: 10-13 retries per mode with the lock, 32-143 without.
BOOST_AUTO_TEST_CASE(four_writers_mixing_erase_and_write_match_the_model) {
    for (const WriteMode mode : {WriteMode::copy, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            const std::uint64_t retried = run_four_writers(mode, 5, 50);
            BOOST_TEST_MESSAGE("retries " << retried);
        }
    }
}

BOOST_AUTO_TEST_CASE(batch_timeout_flushes_in_the_background_without_new_rows) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_timer; CREATE TABLE wr_timer (id int PRIMARY KEY)");
    Options options;
    options.batch_write_timeout = 150ms;
    Writer writer(make_pool(), "wr_timer", {}, options);
    writer.write({1});
    writer.write({2});
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (scalar(c, "SELECT count(*) FROM wr_timer") != "2" &&
           std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(20ms);
    }
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_timer") == "2");
    BOOST_TEST(writer.metrics().flushes == 1u);
    writer.close();
}

BOOST_AUTO_TEST_CASE(without_backgroundflush_batchsize_and_byte_budget_flush_inside_write) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_budget; CREATE TABLE wr_budget (id int PRIMARY KEY, v text)");
    Options options;
    options.batch_write_timeout = 0ms;
    options.background_flush = false;
    options.batch_size = 10;
    {
        Writer writer(make_pool(), "wr_budget", {}, options);
        for (int i = 0; i < 25; ++i) {
            writer.write({i, "x"});
        }
        BOOST_TEST(writer.metrics().flushes == 2u);
        BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_budget") == "20");
        writer.close();
    }
    options.batch_size = 1000000;
    options.batch_bytes = 1000;
    Writer writer(make_pool(), "wr_budget", {}, options);
    for (int i = 100; i < 110; ++i) {
        writer.write({i, std::string(300, 'y')});
    }
    BOOST_TEST(writer.metrics().flushes >= 2u);
    writer.close();
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_budget") == "35");
}

// Waits until `sql` returns `expected` (bounded), for state another thread produces.
bool eventually(Connection& c, const std::string& sql, const std::string& expected) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
        if (scalar(c, sql) == expected) {
            return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

BOOST_AUTO_TEST_CASE(a_full_batch_is_sent_while_write_fills_the_next_and_a_third_waits) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_behind; CREATE TABLE wr_behind (id int PRIMARY KEY)");
    Options options;
    options.batch_write_timeout = 0ms;
    options.batch_size = 10;
    options.batch_bytes = 1u << 20;
    options.conflict_mode = ConflictMode::strict;  // a plain COPY, with or without the extension
    // Were the hand-off broken, a write() would wait on the lock: this makes it fail, not hang.
    options.flush_timeout = 5s;
    options.max_retry_times = 0;
    Writer writer(make_pool(), "wr_behind", {}, options);
    // The first batch's COPY waits for this lock: the writer's thread is busy with it.
    Connection holder = test::connect();
    holder.execute("BEGIN; LOCK TABLE wr_behind IN ACCESS EXCLUSIVE MODE");
    for (int i = 0; i < 20; ++i) {
        writer.write({i});  // batch 1 handed off, batch 2 filled: no write() waits
    }
    BOOST_TEST(eventually(c,
                          "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                          "AND query LIKE 'COPY%wr_behind%'",
                          "1"));
    BOOST_TEST(writer.metrics().flushes == 0u);
    std::atomic<bool> third_done{false};
    std::thread third([&] {
        writer.write({20});  // both batches full: waits until batch 1 is sent
        third_done = true;
    });
    std::this_thread::sleep_for(300ms);
    BOOST_TEST(!third_done.load());
    holder.execute("COMMIT");
    third.join();
    BOOST_TEST(third_done.load());
    writer.close();
    BOOST_TEST(writer.metrics().flushes == 3u);
    BOOST_TEST(writer.metrics().rows_out == 21u);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_behind") == "21");
}

// A flush attempt that passes flushtimeoutms is cancelled on the server, not only hung up on:
// otherwise its backend would wait on for the lock and hold up the retry, or anyone else.
BOOST_AUTO_TEST_CASE(a_flush_past_its_timeout_is_cancelled_on_the_server) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_timeout; CREATE TABLE wr_timeout (id int PRIMARY KEY)");
    Options options;
    options.batch_write_timeout = 0ms;
    options.background_flush = false;  // no writer's thread to send the kept row again meanwhile
    options.write_mode = WriteMode::upsert;
    options.conflict_mode = ConflictMode::upsert;
    options.flush_timeout = 500ms;
    options.max_retry_times = 0;
    Writer writer(make_pool(), "wr_timeout", {}, options);
    Connection holder = test::connect();
    holder.execute("BEGIN; LOCK TABLE wr_timeout IN ACCESS EXCLUSIVE MODE");
    writer.write({1});
    const auto start = std::chrono::steady_clock::now();
    try {
        writer.flush();
        BOOST_FAIL("a flush blocked by a lock did not time out");
    } catch (const Error& error) {
        BOOST_TEST(error.sqlstate() == "08006", error.what());
        BOOST_TEST(std::string(error.what()).find("deadline") != std::string::npos, error.what());
    }
    BOOST_TEST(test::elapsed_ms(start) < 5000);
    // The lock is still held: only the cancel can have ended the writer's statement.
    BOOST_TEST(eventually(c,
                          "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                          "AND query LIKE 'INSERT INTO%wr_timeout%'",
                          "0"));
    holder.execute("ROLLBACK");
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_timeout") == "0");
}

BOOST_AUTO_TEST_CASE(a_background_flush_error_naming_a_dropped_row_is_thrown_by_the_next_call) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_bg_bad; "
        "CREATE TABLE wr_bg_bad (id int PRIMARY KEY, n int CHECK (n >= 0))");
    Options options;
    options.batch_write_timeout = 0ms;
    options.batch_size = 10;
    options.exception_mode = ExceptionMode::strict;
    Writer writer(make_pool(), "wr_bg_bad", {}, options);
    for (int i = 1; i <= 10; ++i) {
        writer.write({i, i == 7 ? -1 : i});  // row 7 breaks the CHECK; the batch goes on its own
    }
    writer.write({11, 11});  // the next batch
    // flush() waits for the writer's thread, finds its failure and throws it before sending
    // row 11: nothing written after dropped rows is committed before the caller has heard.
    try {
        writer.flush();
        BOOST_FAIL("flush() after a failed background flush did not throw");
    } catch (const Error& error) {
        BOOST_TEST(error.sqlstate() == "23514");
        BOOST_TEST(error.row_number() == 7u);
        BOOST_TEST(std::string(error.what()).find("row 7") != std::string::npos, error.what());
    }
    BOOST_TEST(writer.metrics().flush_failures == 1u);
    BOOST_TEST(writer.metrics().rows_discarded == 10u);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_bg_bad") == "0");
    writer.write({12, 12});  // thrown once: the writer goes on
    writer.close();
    BOOST_TEST(scalar(c, "SELECT string_agg(id::text, ',' ORDER BY id) FROM wr_bg_bad") == "11,12");
}

BOOST_AUTO_TEST_CASE(close_racing_write_loses_no_row_that_write_accepted) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_close_race; CREATE TABLE wr_close_race (id int)");
    Options options;
    options.batch_write_timeout = 0ms;
    options.batch_size = 100;
    Writer writer(make_pool(), "wr_close_race", {}, options);
    std::atomic<int> accepted{0};
    std::string refused;  // the SQLSTATE of the write() that close() stopped
    std::thread writing([&] {
        for (int i = 0;; ++i) {
            try {
                writer.write({i});
                ++accepted;
            } catch (const Error& error) {
                refused = error.sqlstate();
                return;
            }
        }
    });
    std::this_thread::sleep_for(100ms);
    writer.close();
    writing.join();
    BOOST_TEST(refused == "55000");
    BOOST_TEST(accepted.load() > 0);
    // Every row a write() took was flushed by close(): none left for the destructor to drop.
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_close_race") == std::to_string(accepted.load()));
    BOOST_TEST(writer.metrics().rows_discarded == 0u);
}

BOOST_AUTO_TEST_CASE(a_kept_batch_error_is_not_thrown_once_a_later_flush_has_sent_the_batch) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_bg_kept; DROP TABLE IF EXISTS wr_bg_gate; "
        "CREATE TABLE wr_bg_gate (closed bool); INSERT INTO wr_bg_gate VALUES (true); "
        "CREATE TABLE wr_bg_kept (id int PRIMARY KEY); "
        "CREATE FUNCTION wr_bg_gate_check() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "  IF (SELECT closed FROM wr_bg_gate) THEN PERFORM pg_sleep(2); "
        "    RAISE EXCEPTION 'gate closed' USING ERRCODE = '42501'; END IF; RETURN NULL; END $$; "
        "CREATE TRIGGER gate BEFORE INSERT ON wr_bg_kept "
        "  FOR EACH STATEMENT EXECUTE FUNCTION wr_bg_gate_check()");
    Options options;
    options.batch_write_timeout = 0ms;
    options.batch_size = 10;
    options.write_mode = WriteMode::insert;
    options.conflict_mode = ConflictMode::strict;
    Writer writer(make_pool(), "wr_bg_kept", {}, options);
    for (int i = 1; i <= 10; ++i) {
        writer.write({i});
    }
    // The writer's thread is inside the failing attempt; open the gate and flush() meanwhile:
    // flush() waits for that attempt (42501, batch kept), then sends the kept batch itself.
    BOOST_TEST_REQUIRE(
        eventually(c,
                   "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                   "AND query LIKE 'INSERT INTO%wr_bg_kept%'",
                   "1"));
    c.execute("UPDATE wr_bg_gate SET closed = false");
    BOOST_CHECK_NO_THROW(writer.flush());
    BOOST_TEST(writer.metrics().flush_failures == 1u);
    BOOST_TEST(writer.metrics().flushes == 1u);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_bg_kept") == "10");
    BOOST_CHECK_NO_THROW(writer.write({11}));
    BOOST_CHECK_NO_THROW(writer.close());
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_bg_kept") == "11");
    c.execute("DROP TABLE wr_bg_kept; DROP FUNCTION wr_bg_gate_check(); DROP TABLE wr_bg_gate");
}

BOOST_AUTO_TEST_CASE(destructor_discards_unflushed_rows_and_says_so) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_dtor; CREATE TABLE wr_dtor (id int PRIMARY KEY)");
    std::vector<std::string> warnings;
    {
        Options options;
        options.batch_write_timeout = 0ms;
        WriterHooks hooks;
        hooks.on_log = [&](LogLevel level, const std::string& line) {
            if (level == LogLevel::warning) {
                warnings.push_back(line);
            }
        };
        Writer writer(make_pool(), "wr_dtor", {}, options, hooks);
        writer.write({1});
        writer.write({2});
    }
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_dtor") == "0");
    BOOST_TEST_REQUIRE(warnings.size() == 1u);
    BOOST_TEST(warnings[0].find("2 unflushed") != std::string::npos, warnings[0]);
}

BOOST_AUTO_TEST_CASE(bad_input_gets_a_clear_typed_error) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_bad");
    c.execute(
        "CREATE TABLE wr_bad (id int PRIMARY KEY, v varchar(3), g int GENERATED ALWAYS AS (id * 2) "
        "STORED, p point)");
    Options options;
    options.batch_write_timeout = 0ms;
    auto pool = make_pool();
    std::string message;
    BOOST_TEST(error_state(
                   [&] {
                       Writer(pool, "wr_bad", {"id", "nope"}, options);
                   },
                   &message) == "42703");
    BOOST_TEST(message.find("nope") != std::string::npos, message);
    BOOST_TEST(error_state([&] { Writer(pool, "wr_missing", {}, options); }) == "42P01");
    BOOST_TEST(error_state(
                   [&] {
                       Writer(pool, "wr_bad", {"id", "p"}, options);
                   },
                   &message) == "0A000");
    BOOST_TEST(message.find("point") != std::string::npos, message);
    BOOST_TEST(error_state([&] { Writer(pool, "wr_bad", {"id", "g"}, options); }) == "0A000");
    BOOST_TEST(error_state([&] { Writer(pool, "wr_bad", {"v"}, options); }) == "42P10");
    // conflictmode update with only the key written: nothing to update, in every write mode
    // (as COPY ON CONFLICT refuses it), when the writer opens.
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        Options update_only_key = options;
        update_only_key.conflict_mode = ConflictMode::update;
        update_only_key.write_mode = mode;
        BOOST_TEST(error_state([&] { Writer(pool, "wr_bad", {"id"}, update_only_key); },
                               &message) == "42P10");
        BOOST_TEST(message.find("needs a written column besides the key columns (id)") !=
                       std::string::npos,
                   message);
        update_only_key.conflict_mode = ConflictMode::upsert;  // inserts new keys: allowed
        BOOST_CHECK_NO_THROW(Writer(pool, "wr_bad", {"id"}, update_only_key));
    }

    options.exception_mode = ExceptionMode::strict;  // ignore reports values (test below)
    Writer writer(pool, "wr_bad", {"id", "v"}, options);
    BOOST_TEST(error_state([&] { writer.write({1, 2}); }, &message) == "42804");
    BOOST_TEST(message.find("column \"v\", row 1") != std::string::npos, message);
    BOOST_TEST(error_state([&] { writer.write({1}); }) == "22P04");
    BOOST_TEST(error_state([&] { writer.write({Value(), "a"}); }, &message) == "23502");
    BOOST_TEST(error_state([&] { writer.write({1, "abcd"}); }) == "22001");
    BOOST_TEST(error_state([&] { writer.write({INT64_C(1) << 40, "a"}); }) == "22003");
    BOOST_TEST(error_state([&] { writer.erase({Value()}); }) == "23502");
    BOOST_TEST(error_state([&] { Options().set("writemode", "7"); }) == "22023");
    // A pool size of 0 set from code: the Error naming the option, before any pool is built.
    Options no_connections = options;
    no_connections.connection_max_active = 0;
    BOOST_TEST(error_state([&] { Writer(test::options(), "wr_bad", {}, no_connections); },
                           &message) == "22023");
    BOOST_TEST(message.find("connectionmaxactive") != std::string::npos, message);
    writer.write({1, "ok"});
    writer.close();
    BOOST_TEST(writer.metrics().rows_in == 1u);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_bad") == "1");
    BOOST_TEST(error_state([&] { writer.write({2, "no"}); }) == "55000");
}

// A typed value of another kind is stored as INSERT stores it given a parameter of its own
// type: the server's cast (int8 -> float4 rounded once, float8 -> numeric with 15 digits,
// float8 -> float4 up to FLT_MAX); ISO text as the server reads it (second 60); a numeric of
// any length the server takes; a timestamp the server rounds past the end of its range.
BOOST_AUTO_TEST_CASE(typed_values_are_stored_as_the_servers_casts_store_them) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_casts");
    c.execute(
        "CREATE TABLE wr_casts (id int PRIMARY KEY, f4 real, num numeric, num2 numeric(20,4), "
        "ts timestamp, ts0 timestamp(0), tm time)");
    Options options;
    options.batch_write_timeout = 0ms;
    Writer writer(make_pool(), "wr_casts", {}, options);
    const std::string long_numeric(12001, '7');
    writer.write({1, INT64_C(4611686293305294849), 0.1 + 0.2, 123456789.12345678,
                  Timestamp::parse("2024-01-01 23:59:60"), Timestamp{INT64_C(9223371331199999999)},
                  Time::parse("23:59:60")});
    writer.write({2, 3.4028235e38, Numeric(long_numeric), 1e-5, Value(), Value(), Value()});
    writer.close();
    const std::string sql =
        "SELECT 1, 4611686293305294849::int8::real, (0.1::float8 + 0.2::float8)::numeric, "
        "123456789.12345678::float8::numeric(20,4), '2024-01-01 23:59:60'::timestamp, "
        "'294276-12-31 23:59:59.999999'::timestamp(0), '23:59:60'::time "
        "UNION ALL SELECT 2, 3.4028235e38::float8::real, '" +
        long_numeric + "'::numeric, 1e-5::float8::numeric(20,4), NULL, NULL, NULL";
    const auto text = [&](const std::string& query) {
        return scalar(c,
                      "SELECT string_agg(concat_ws('|', id, f4, num, num2, ts, ts0, tm), "
                      "';' ORDER BY id) FROM (" +
                          query + ") AS r(id, f4, num, num2, ts, ts0, tm)");
    };
    const std::string expected = text(sql);
    BOOST_TEST(text("TABLE wr_casts") == expected);
    BOOST_TEST(expected.find("294277-01-01 00:00:00") != std::string::npos, expected);
}

// Types the client cannot write are refused when the writer opens, and a NULL a domain
// refuses when the row is written, not at the flush.
// exceptionmode=ignore: a value that does not fit its column, or a NULL in a NOT NULL column,
// is the row's own error, found by write(): reported once through on_reject (before write()
// returns) and counted, the row numbered as every write; the rest load. The caller's errors (a
// wrong kind of value, a wrong arity, a NULL key) are still thrown.
BOOST_AUTO_TEST_CASE(ignore_mode_reports_a_value_that_does_not_fit_when_it_is_written) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_fit; CREATE TABLE wr_fit (id int PRIMARY KEY, v varchar(3), "
        "n int NOT NULL CHECK (n >= 0))");
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("writemode " << to_string(mode)) {
            c.execute("TRUNCATE wr_fit");
            Options options;
            options.write_mode = mode;
            options.exception_mode = ExceptionMode::ignore;
            options.batch_write_timeout = 0ms;
            std::vector<RejectedRow> rejects;
            WriterHooks hooks;
            hooks.on_reject = [&](const RejectedRow& row) { rejects.push_back(row); };
            Writer writer(make_pool(), "wr_fit", {}, options, hooks);
            writer.write({1, "ok", 1});
            writer.write({2, "toolong", 1});            // row 2: 22001, at write()
            BOOST_TEST(rejects.size() == 1u);           // already reported
            writer.write({3, "ok", INT64_C(1) << 40});  // row 3: 22003
            writer.write({4, "ok", -1});                // row 4: CHECK, by the server
            writer.write({5, "ok", Value()});           // row 5: 23502
            BOOST_TEST(error_state([&] { writer.write({6, 7, 1}); }) == "42804");
            BOOST_TEST(error_state([&] { writer.write({6}); }) == "22P04");
            BOOST_TEST(error_state([&] { writer.write({Value(), "a", 1}); }) == "23502");
            writer.write({6, "ok", 6});  // row 6: the thrown calls took no number
            writer.close();
            BOOST_TEST(scalar(c, "SELECT string_agg(id::text, ',' ORDER BY id) FROM wr_fit") ==
                       "1,6");
            BOOST_TEST_REQUIRE(rejects.size() == 4u);
            const std::vector<std::pair<std::uint64_t, std::string>> expected = {
                {2, "22001"}, {3, "22003"}, {5, "23502"}, {4, "23514"}};
            for (std::size_t i = 0; i < expected.size(); ++i) {
                BOOST_TEST(rejects[i].row_number == expected[i].first);
                BOOST_TEST(rejects[i].sqlstate == expected[i].second, rejects[i].message);
                BOOST_TEST(!rejects[i].is_delete);
                BOOST_TEST(rejects[i].values.size() == 3u);
            }
            BOOST_TEST(rejects[0].message.find("column \"v\", row 2") == 0u, rejects[0].message);
            BOOST_TEST((rejects[0].values[1] == Value("toolong")));
            const WriterMetrics metrics = writer.metrics();
            BOOST_TEST(metrics.rows_in == 6u);
            BOOST_TEST(metrics.rows_rejected == 4u);
            BOOST_TEST(metrics.rows_out == 3u);  // rows 1, 4 and 6 were sent
            // Bytes and latency of the committed batch: the fields of rows 1 and 6 (row 4 is
            // rejected by the server, after the batch was sent once).
            BOOST_TEST(metrics.flushes == 1u);
            BOOST_TEST(metrics.bytes_out > 0u);
            BOOST_TEST(metrics.last_flush_latency.count() > 0);
            BOOST_TEST(metrics.max_flush_latency.count() == metrics.last_flush_latency.count());
            BOOST_TEST(metrics.total_flush_latency.count() == metrics.last_flush_latency.count());
        }
    }
}

// verbose: every log line the writer gives its hook (connecting, flushing, retrying after a
// killed backend, failing to connect) and every error it throws leave the password out.
BOOST_AUTO_TEST_CASE(verbose_logs_and_errors_never_carry_the_password) {
    const std::string secret = "pw-s3cret-9f1c";
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_secret; CREATE TABLE wr_secret (id int PRIMARY KEY)");
    std::mutex mutex;
    std::vector<std::string> lines;
    WriterHooks hooks;
    hooks.on_log = [&](LogLevel, const std::string& line) {
        std::lock_guard<std::mutex> lock(mutex);
        lines.push_back(line);
    };
    Options options;
    options.verbose = true;
    options.batch_write_timeout = 0ms;
    options.retry_wait_time = 10ms;
    ConnectionOptions with_password = test::options();
    with_password.set("password", secret);  // sent only if the server asks (trust: it does not)
    {
        Writer writer(with_password, "wr_secret", {}, options, hooks);
        writer.write({1});
        writer.flush();
        // The pooled session is killed: the next flush is retried on a new one.
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
        writer.write({2});
        writer.close();
    }
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_secret") == "2");
    // A server that is not there: the connection error and its log lines.
    ConnectionOptions nowhere = with_password;
    nowhere.set("host", "127.0.0.1");
    nowhere.set("port", std::to_string(test::unused_tcp_port()));
    Options quick = options;
    quick.connect_timeout = 500ms;
    std::string message;
    BOOST_TEST(error_state([&] { Writer(nowhere, "wr_secret", {}, quick, hooks); }, &message) !=
               "<no error>");
    BOOST_TEST(message.find(secret) == std::string::npos, message);
    std::lock_guard<std::mutex> lock(mutex);
    BOOST_TEST(!lines.empty());
    bool info_seen = false;
    for (const auto& line : lines) {
        BOOST_TEST(line.find(secret) == std::string::npos, line);
        info_seen = info_seen || line.find("flushed") != std::string::npos;
    }
    BOOST_TEST(info_seen);  // verbose: the info lines came too
}

// on_reject is called by one thread at a time: write() reports the values it refuses on the
// caller's thread while the writer's thread reports the rows the server refused in a batch it
// sent (background flush), and the hook below is not thread-safe by itself.
BOOST_AUTO_TEST_CASE(the_reject_hook_is_never_called_from_two_threads_at_once) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_hook; CREATE TABLE wr_hook (id int PRIMARY KEY, v varchar(3), "
        "n int CHECK (n >= 0))");
    Options options;
    options.exception_mode = ExceptionMode::ignore;
    options.batch_size = 20;
    options.batch_write_timeout = 0ms;
    options.background_flush = true;
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::uint64_t reported = 0;  // guarded by the writer's one-at-a-time promise
    WriterHooks hooks;
    hooks.on_reject = [&](const RejectedRow&) {
        if (inside.fetch_add(1) != 0) {
            overlaps.fetch_add(1);
        }
        std::this_thread::sleep_for(2ms);
        ++reported;
        inside.fetch_sub(1);
    };
    std::uint64_t bad = 0;
    {
        Writer writer(make_pool(2), "wr_hook", {}, options, hooks);
        for (int i = 1; i <= 400; ++i) {
            if (i % 3 == 0) {
                writer.write({i, "toolong", 1});  // refused by write()
                ++bad;
            } else if (i % 3 == 1) {
                writer.write({i, "ok", -1});  // refused by the server, reported by a flush
                ++bad;
            } else {
                writer.write({i, "ok", i});
            }
        }
        writer.close();
        BOOST_TEST(writer.metrics().rows_rejected == bad);
    }
    BOOST_TEST(overlaps.load() == 0);
    BOOST_TEST(reported == bad);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_hook") == std::to_string(400 - bad));
}

BOOST_AUTO_TEST_CASE(array_like_types_and_domain_not_null_are_refused_up_front) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_vec; DROP DOMAIN IF EXISTS wr_nn");
    c.execute("CREATE DOMAIN wr_nn AS int NOT NULL");
    c.execute("CREATE TABLE wr_vec (id int PRIMARY KEY, v int2vector, n wr_nn)");
    Options options;
    options.batch_write_timeout = 0ms;
    auto pool = make_pool();
    std::string message;
    BOOST_TEST(error_state(
                   [&] {
                       Writer(pool, "wr_vec", {"id", "v"}, options);
                   },
                   &message) == "0A000");
    BOOST_TEST(message.find("int2vector") != std::string::npos, message);
    options.exception_mode = ExceptionMode::strict;
    Writer writer(pool, "wr_vec", {"id", "n"}, options);
    BOOST_TEST(error_state([&] { writer.write({1, Value()}); }, &message) == "23502");
    BOOST_TEST(message.find("column \"n\", row 1") != std::string::npos, message);
    writer.write({2, 5});
    writer.close();
    BOOST_TEST(scalar(c, "SELECT string_agg(id || ':' || n, ',') FROM wr_vec") == "2:5");
}

BOOST_AUTO_TEST_CASE(unreachable_server_fails_within_the_connect_deadline) {
    ConnectionOptions nowhere;
    nowhere.set("host", "127.0.0.1");
    test::SilentListener listener(test::SilentListener::Mode::completes_handshake);
    nowhere.set("port", std::to_string(listener.port()));
    Options options;
    options.connect_timeout = 500ms;
    options.batch_write_timeout = 0ms;
    const auto start = std::chrono::steady_clock::now();
    std::string message;
    BOOST_TEST(error_state([&] { Writer(nowhere, "t", {}, options); }, &message) == "08001");
    BOOST_TEST(test::elapsed_ms(start) < 2500);
    BOOST_TEST_MESSAGE("unreachable: " << message);
}

BOOST_AUTO_TEST_CASE(identifiers_are_quoted_and_matched_by_case_rules) {
    Connection c = test::connect();
    c.execute("DROP SCHEMA IF EXISTS \"Wr Schema\" CASCADE; CREATE SCHEMA \"Wr Schema\"");
    c.execute(
        "CREATE TABLE \"Wr Schema\".\"Mixed Case\" (\"Id\" int PRIMARY KEY, \"select\" text)");
    Options options;
    options.batch_write_timeout = 0ms;
    options.target_schema = "wr schema";
    {
        Writer writer(make_pool(), "mixed case", {"id", "SELECT"}, options);
        BOOST_TEST(writer.columns() == (std::vector<std::string>{"Id", "select"}));
        writer.write({1, "x"});
        writer.close();
    }
    BOOST_TEST(scalar(c, "SELECT \"select\" FROM \"Wr Schema\".\"Mixed Case\"") == "x");
    options.case_sensitive = true;
    BOOST_TEST(error_state([&] { Writer(make_pool(), "mixed case", {}, options); }) == "42P01");
    options.target_schema = "Wr Schema";
    BOOST_TEST(error_state([&] { Writer(make_pool(), "Mixed Case", {"id"}, options); }) == "42703");
}

BOOST_AUTO_TEST_CASE(a_key_the_client_cannot_deduplicate_is_refused_when_the_writer_opens) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_jsonb_key");
    c.execute("CREATE TABLE wr_jsonb_key (doc jsonb PRIMARY KEY, v int)");
    std::string message;
    BOOST_TEST(error_state([&] { Writer(make_pool(), "wr_jsonb_key", {}, Options{}); }, &message) ==
               "0A000");
    BOOST_TEST(message.find("key column \"doc\" has type jsonb") != std::string::npos, message);
    // a case-insensitive collation: 'A' = 'a' on the server, not in bytes
    c.execute("DROP TABLE IF EXISTS wr_ci_key");
    c.execute("DROP COLLATION IF EXISTS wr_ci");
    c.execute(
        "CREATE COLLATION wr_ci (provider = icu, locale = 'und-u-ks-level2', "
        "deterministic = false)");
    c.execute("CREATE TABLE wr_ci_key (name text COLLATE wr_ci PRIMARY KEY, v int)");
    BOOST_TEST(error_state([&] { Writer(make_pool(), "wr_ci_key", {}, Options{}); }, &message) ==
               "0A000");
    BOOST_TEST(message.find("key column \"name\" has type text") != std::string::npos, message);
    // ... also when only the unique index compares so (ON CONFLICT uses the index's collation)
    c.execute("DROP TABLE wr_ci_key");
    c.execute("CREATE TABLE wr_ci_key (name text, v int)");
    c.execute("CREATE UNIQUE INDEX ON wr_ci_key (name COLLATE wr_ci)");
    BOOST_TEST(error_state([&] { Writer(make_pool(), "wr_ci_key", {}, Options{}); }, &message) ==
               "0A000");
}

// A table whose every column is generated (or GENERATED ALWAYS AS IDENTITY) leaves a writer
// nothing to write: refused when it opens. It used to open, then divide by its zero columns at
// the first insert flush (SIGFPE) or re-send a COPY with an empty column list forever.
BOOST_AUTO_TEST_CASE(a_table_with_no_writable_column_is_refused_when_the_writer_opens) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_nothing");
    c.execute(
        "CREATE TABLE wr_nothing (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "twice int GENERATED ALWAYS AS (id * 2) STORED)");
    for (const WriteMode mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        BOOST_TEST_CONTEXT("write mode " << to_string(mode)) {
            Options options;
            options.write_mode = mode;
            std::string message;
            BOOST_TEST(error_state([&] { Writer(make_pool(), "wr_nothing", {}, options); },
                                   &message) == "0A000");
            BOOST_TEST(message.find("has no column the writer can write") != std::string::npos,
                       message);
        }
    }
    c.execute("DROP TABLE wr_nothing");
}

BOOST_AUTO_TEST_CASE(identity_columns_named_by_the_caller_are_written_as_copy_does_and_kept) {
    Connection admin = test::connect();
    if (scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = 'wr_noext'") == "0") {
        admin.execute("CREATE DATABASE wr_noext");
    }
    ConnectionOptions noext = test::options();
    noext.set("dbname", "wr_noext");
    struct Case {
        const char* label;
        ConnectionOptions connection;
        WriteMode mode;
    };
    for (const Case& k : {Case{"copy, extension", test::options(), WriteMode::copy},
                          Case{"copy, staging fallback", noext, WriteMode::copy},
                          Case{"insert", test::options(), WriteMode::insert},
                          Case{"upsert", test::options(), WriteMode::upsert}}) {
        BOOST_TEST_CONTEXT(k.label) {
            Connection c = Connection::connect(k.connection, 10s);
            c.execute("DROP TABLE IF EXISTS wr_ident");
            c.execute(
                "CREATE TABLE wr_ident (k int PRIMARY KEY, id bigint GENERATED ALWAYS AS "
                "IDENTITY, v text)");
            c.execute("INSERT INTO wr_ident OVERRIDING SYSTEM VALUE VALUES (1, 100, 'old')");
            Options options;
            options.batch_write_timeout = 0ms;
            options.write_mode = k.mode;
            {
                // Left to the server unless named.
                Writer generated(make_pool(1, k.connection), "wr_ident", {}, options);
                BOOST_TEST(generated.columns() == (std::vector<std::string>{"k", "v"}));
                generated.write({3, "gen"});
                generated.close();
            }
            Writer writer(make_pool(1, k.connection), "wr_ident", {"k", "id", "v"}, options);
            writer.write({1, 999, "new"});
            writer.write({2, 200, "b"});
            writer.close();
            BOOST_TEST(dump(c, "wr_ident") ==
                       (std::vector<std::string>{"(1,100,new)", "(2,200,b)", "(3,1,gen)"}));
            options.update_columns = {"id"};
            std::string message;
            BOOST_TEST(
                error_state(
                    [&] {
                        Writer(make_pool(1, k.connection), "wr_ident", {"k", "id", "v"}, options);
                    },
                    &message) == "428C9");
            BOOST_TEST(message.find("\"id\" is an identity column") != std::string::npos, message);
        }
    }
}

BOOST_AUTO_TEST_CASE(include_columns_of_the_key_index_are_not_key_columns) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS wr_include");
    c.execute(
        "CREATE TABLE wr_include (id int, payload text, v int, PRIMARY KEY (id) INCLUDE "
        "(payload))");
    c.execute("INSERT INTO wr_include VALUES (1, 'old', 1), (2, 'old', 2), (3, 'old', 3)");
    for (auto mode : {WriteMode::copy, WriteMode::insert, WriteMode::upsert}) {
        Options options;
        options.batch_write_timeout = 0ms;
        options.write_mode = mode;
        options.conflict_mode = ConflictMode::update;
        Writer writer(make_pool(), "wr_include", {"id", "payload", "v"}, options);
        BOOST_TEST(writer.key_columns() == std::vector<std::string>{"id"});
        writer.write({1, "new" + std::to_string(static_cast<int>(mode)), 10});
        writer.erase({2});
        writer.close();
        BOOST_TEST(
            dump(c, "wr_include") ==
                (std::vector<std::string>{
                    "(1,new" + std::to_string(static_cast<int>(mode)) + ",10)", "(3,old,3)"}),
            "write mode " << static_cast<int>(mode));
        c.execute("INSERT INTO wr_include VALUES (2, 'old', 2)");
    }
    // A deferrable unique constraint cannot be an ON CONFLICT arbiter: not a key (update mode
    // needs one).
    c.execute("DROP TABLE IF EXISTS wr_deferrable");
    c.execute("CREATE TABLE wr_deferrable (id int UNIQUE DEFERRABLE, v int)");
    Options options;
    options.conflict_mode = ConflictMode::update;
    BOOST_TEST(error_state([&] { Writer(make_pool(), "wr_deferrable", {}, options); }) == "42P10");
}

// ON CONFLICT (key) needs a unique index on exactly the key. Without one every flush would fail
// with 42P10, which is no row error: the batch would be kept and sent again at every flush.
BOOST_AUTO_TEST_CASE(conflict_columns_without_a_unique_index_are_refused_when_the_writer_opens) {
    Connection admin = test::connect();
    if (scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = 'wr_noext'") == "0") {
        admin.execute("CREATE DATABASE wr_noext");
    }
    ConnectionOptions noext = test::options();
    noext.set("dbname", "wr_noext");
    const ConnectionOptions with_extension = test::options();
    for (const ConnectionOptions& where : {with_extension, noext}) {
        Connection c = Connection::connect(where, 10s);
        c.execute("DROP TABLE IF EXISTS wr_no_arbiter");
        c.execute("CREATE TABLE wr_no_arbiter (id int PRIMARY KEY, email text, v int)");
        c.execute("INSERT INTO wr_no_arbiter VALUES (1, 'a@x', 1)");
    }
    Options options;
    options.batch_write_timeout = 0ms;
    options.conflict_columns = {"email"};
    struct Case {
        const char* label;
        ConnectionOptions where;
        WriteMode write_mode;
        ConflictMode conflict_mode;
    };
    for (const Case& k :
         {Case{"copy, extension, upsert", with_extension, WriteMode::copy, ConflictMode::upsert},
          Case{"copy, extension, update", with_extension, WriteMode::copy, ConflictMode::update},
          Case{"copy, staging fallback, ignore", noext, WriteMode::copy, ConflictMode::ignore},
          Case{"upsert, upsert", with_extension, WriteMode::upsert, ConflictMode::upsert},
          Case{"upsert, ignore", with_extension, WriteMode::upsert, ConflictMode::ignore}}) {
        BOOST_TEST_CONTEXT(k.label) {
            options.write_mode = k.write_mode;
            options.conflict_mode = k.conflict_mode;
            const Error error = test::error_of(
                [&] { Writer(make_pool(1, k.where), "wr_no_arbiter", {}, options); });
            BOOST_TEST(error.sqlstate() == "42P10");
            const std::string message = error.what();
            BOOST_TEST(message.find("(email)") != std::string::npos, message);
            BOOST_TEST(message.find("wr_no_arbiter") != std::string::npos, message);
            BOOST_TEST(!error.hint().empty());
        }
    }
    // What needs no arbiter still works: UPDATE ... FROM by the key, and plain INSERT.
    options.write_mode = WriteMode::upsert;
    options.conflict_mode = ConflictMode::update;
    {
        Writer writer(make_pool(), "wr_no_arbiter", {"email", "v"}, options);
        writer.write({"a@x", 10});
        writer.close();
    }
    options.write_mode = WriteMode::insert;
    options.conflict_mode = ConflictMode::upsert;
    {
        Writer writer(make_pool(), "wr_no_arbiter", {}, options);
        writer.write({2, "b@x", 2});
        writer.close();
    }
    options.write_mode = WriteMode::copy;
    options.conflict_mode = ConflictMode::update;
    {
        Writer writer(make_pool(1, noext), "wr_no_arbiter", {"email", "v"}, options);
        writer.write({"a@x", 11});
        writer.close();
    }
    BOOST_TEST(dump(admin, "wr_no_arbiter") ==
               (std::vector<std::string>{"(1,a@x,10)", "(2,b@x,2)"}));
    Connection other = Connection::connect(noext, 10s);
    BOOST_TEST(dump(other, "wr_no_arbiter") == (std::vector<std::string>{"(1,a@x,11)"}));
}

namespace {

// A table whose row trigger fails with 40001 (transient) while wr_<name>_flag says so.
void create_failing_table(Connection& c, const std::string& name) {
    c.execute("DROP TABLE IF EXISTS " + name + "; DROP TABLE IF EXISTS " + name +
              "_flag; DROP FUNCTION IF EXISTS " + name + "_fail()");
    c.execute("CREATE TABLE " + name + "_flag (failing bool); INSERT INTO " + name +
              "_flag VALUES (true)");
    c.execute("CREATE TABLE " + name + " (id int PRIMARY KEY, v int)");
    c.execute("CREATE FUNCTION " + name +
              "_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF (SELECT failing FROM " +
              name +
              "_flag) THEN RAISE EXCEPTION 'simulated' USING ERRCODE = '40001'; END IF; "
              "RETURN NEW; END $$");
    c.execute("CREATE TRIGGER fail BEFORE INSERT OR UPDATE ON " + name +
              " FOR EACH ROW EXECUTE FUNCTION " + name + "_fail()");
}

// Waits (bounded) until `ready` holds.
template <typename F>
bool eventually_true(F&& ready) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
        if (ready()) {
            return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

// batchwritetimeoutms flushes "also when no new rows arrive": a batch kept after a short outage
// is sent by the writer's thread once the server is back, without another call (a quiet CDC
// producer may never make one).
BOOST_AUTO_TEST_CASE(a_kept_batch_is_sent_by_the_writers_thread_once_the_server_is_back) {
    Connection c = test::connect();
    create_failing_table(c, "wr_dormant");
    Options options;
    options.write_mode = WriteMode::upsert;
    options.batch_write_timeout = 100ms;
    options.max_retry_times = 1;
    options.retry_wait_time = 20ms;
    std::mutex log_mutex;
    std::vector<std::string> errors;
    WriterHooks hooks;
    hooks.on_log = [&](LogLevel level, const std::string& line) {
        if (level == LogLevel::error) {
            std::lock_guard<std::mutex> lock(log_mutex);
            errors.push_back(line);
        }
    };
    Writer writer(make_pool(), "wr_dormant", {}, options, hooks);
    writer.write({1, 1});
    writer.write({2, 2});
    BOOST_TEST_REQUIRE(eventually_true([&] { return writer.metrics().flush_failures >= 1; }));
    // While the server fails, the kept batch is tried again on the retry back-off, not in a loop.
    std::this_thread::sleep_for(1s);
    BOOST_TEST(writer.metrics().retries < 20u);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_dormant") == "0");
    c.execute("UPDATE wr_dormant_flag SET failing = false");
    BOOST_TEST(eventually(c, "SELECT count(*) FROM wr_dormant", "2"));
    BOOST_TEST(writer.metrics().flushes == 1u);
    {
        std::lock_guard<std::mutex> lock(log_mutex);
        BOOST_TEST_REQUIRE(!errors.empty());  // the failures were logged, not swallowed
        BOOST_TEST(errors.front().find("40001") != std::string::npos, errors.front());
    }
    // The error was about a batch that has since been sent: nothing is left to throw.
    BOOST_CHECK_NO_THROW(writer.close());
    BOOST_TEST(writer.metrics().rows_out == 2u);
}

// Once close() has thrown, nothing kept is sent behind the caller's back (a caller that takes
// the failure as "not loaded" may load the rows again); another close() sends it. And the
// destructor does not wait out the back-off of a retry the writer's thread is in.
BOOST_AUTO_TEST_CASE(after_a_failed_close_nothing_is_sent_until_the_caller_asks) {
    Connection c = test::connect();
    create_failing_table(c, "wr_closed");
    Options options;
    options.write_mode = WriteMode::upsert;
    options.batch_write_timeout = 100ms;
    options.max_retry_times = 1;
    options.retry_wait_time = 20ms;
    Writer writer(make_pool(), "wr_closed", {}, options);
    writer.write({1, 1});
    writer.write({2, 2});
    BOOST_CHECK_THROW(writer.close(), Error);
    c.execute("UPDATE wr_closed_flag SET failing = false");
    std::this_thread::sleep_for(1500ms);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_closed") == "0");
    BOOST_CHECK_NO_THROW(writer.close());
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_closed") == "2");

    create_failing_table(c, "wr_dtor");
    options.max_retry_times = 3;
    options.retry_wait_time = 2s;
    auto doomed =
        std::make_unique<Writer>(make_pool(), "wr_dtor", std::vector<std::string>{}, options);
    doomed->write({1, 1});
    BOOST_TEST_REQUIRE(eventually_true([&] { return doomed->metrics().retries >= 1; }));
    const auto start = std::chrono::steady_clock::now();
    doomed.reset();  // the writer's thread is in a 2 s (then 4 s) back-off
    BOOST_TEST(test::elapsed_ms(start) < 1500);
}

// flush() sends a kept batch again at once rather than throwing the stale error of the writer's
// thread (which would wait for its retry back-off).
BOOST_AUTO_TEST_CASE(flush_sends_a_kept_batch_again_instead_of_throwing_its_stale_error) {
    Connection c = test::connect();
    create_failing_table(c, "wr_stale");
    Options options;
    options.write_mode = WriteMode::upsert;
    options.batch_write_timeout = 100ms;
    options.max_retry_times = 0;
    options.retry_wait_time = 10s;  // the writer's thread would try again only after this
    Writer writer(make_pool(), "wr_stale", {}, options);
    writer.write({1, 1});
    BOOST_TEST_REQUIRE(eventually_true([&] { return writer.metrics().flush_failures == 1; }));
    c.execute("UPDATE wr_stale_flag SET failing = false");
    const auto start = std::chrono::steady_clock::now();
    BOOST_CHECK_NO_THROW(writer.flush());
    BOOST_TEST(test::elapsed_ms(start) < 5000);
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_stale") == "1");
    BOOST_CHECK_NO_THROW(writer.close());
    BOOST_TEST(writer.metrics().flushes == 1u);
}

// A batch dropped by the writer's thread (exceptionmode strict) is logged when it is dropped, and
// its error, never thrown, when the writer is destroyed: it does not vanish without a trace.
BOOST_AUTO_TEST_CASE(a_dropped_batch_and_its_unthrown_error_are_logged_without_values) {
    Connection c = test::connect();
    c.execute(
        "DROP TABLE IF EXISTS wr_drop_log; "
        "CREATE TABLE wr_drop_log (id int PRIMARY KEY, v int CHECK (v < 400000))");
    std::mutex log_mutex;
    std::vector<std::string> lines;
    std::vector<std::string> errors;
    WriterHooks hooks;
    hooks.on_log = [&](LogLevel level, const std::string& line) {
        std::lock_guard<std::mutex> lock(log_mutex);
        lines.push_back(line);
        if (level == LogLevel::error) {
            errors.push_back(line);
        }
    };
    const auto error_count = [&] {
        std::lock_guard<std::mutex> lock(log_mutex);
        return errors.size();
    };
    {
        Options options;
        options.batch_size = 2;
        options.batch_write_timeout = 0ms;
        options.exception_mode = ExceptionMode::strict;
        options.write_mode = WriteMode::upsert;
        options.verbose = true;
        Writer writer(make_pool(), "wr_drop_log", {}, options, hooks);
        writer.write({1, 1});
        writer.write({2, 424242});  // a full batch: the writer's thread sends it, row 2 fails
        BOOST_TEST_REQUIRE(eventually_true([&] { return error_count() >= 1; }));
        BOOST_TEST(writer.metrics().rows_discarded == 2u);
        std::lock_guard<std::mutex> lock(log_mutex);
        BOOST_TEST(errors[0].find("23514") != std::string::npos, errors[0]);
        BOOST_TEST(errors[0].find("row 2") != std::string::npos, errors[0]);
        BOOST_TEST(errors[0].find("dropped") != std::string::npos, errors[0]);
    }  // destroyed without close(): the error was never thrown
    BOOST_TEST_REQUIRE(errors.size() == 2u);
    BOOST_TEST(errors[1].find("23514") != std::string::npos, errors[1]);
    BOOST_TEST(errors[1].find("row 2") != std::string::npos, errors[1]);
    BOOST_TEST(errors[1].find("never thrown") != std::string::npos, errors[1]);
    for (const std::string& line : lines) {
        BOOST_TEST(line.find("424242") == std::string::npos, line);
    }
    BOOST_TEST(scalar(c, "SELECT count(*) FROM wr_drop_log") == "0");
}

BOOST_AUTO_TEST_SUITE_END()
