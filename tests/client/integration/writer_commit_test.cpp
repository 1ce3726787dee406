// Writer when the connection breaks around COMMIT: the outcome is asked of the server
// (txid_status) and only a batch that did not commit is sent again — never twice.
#include <chrono>
#include <memory>
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/pool.hpp>
#include <pg_ingest/writer.hpp>

#include "fault_proxy.hpp"
#include "test_support.hpp"

using namespace pg_ingest;
using namespace std::chrono_literals;

namespace {

std::string count_of(const std::string& table) {
    Connection c = test::connect();
    return *c.execute("SELECT count(*) || '/' || count(DISTINCT id) FROM " + table).get(0, 0);
}

struct Case {
    const char* name;
    WriteMode write_mode;
    ConflictMode conflict_mode;
    bool keyed;
};

// Appends into a table without a key, and strict inserts into a keyed one: a second copy of
// a committed batch would show as extra rows or fail with 23505.
const Case cases[] = {
    {"copy append", WriteMode::copy, ConflictMode::upsert, false},
    {"insert append", WriteMode::insert, ConflictMode::upsert, false},
    {"copy strict", WriteMode::copy, ConflictMode::strict, true},
    {"upsert strict", WriteMode::upsert, ConflictMode::strict, true},
};

// Writes ids [first, first + 1000) and flushes through `proxy`, cut as `cut`.
WriterMetrics load_through_cut(test::FaultProxy& proxy, const Case& c, const std::string& table,
                               test::FaultProxy::Cut cut) {
    Options options;
    options.write_mode = c.write_mode;
    options.conflict_mode = c.conflict_mode;
    options.max_retry_times = 3;
    options.retry_wait_time = 20ms;
    options.batch_write_timeout = 0ms;
    auto pool = std::make_shared<ConnectionPool>(
        proxy.options(), ConnectionPool::Settings{1, std::chrono::seconds(5)});
    Writer writer(pool, table, {"id", "v"}, options);
    for (int id = 0; id < 1000; ++id) {
        writer.write({id, "v" + std::to_string(id)});
    }
    proxy.arm(cut);
    writer.flush();
    BOOST_TEST(proxy.cuts() == 1);
    // The writer goes on normally afterwards.
    for (int id = 1000; id < 1500; ++id) {
        writer.write({id, "v" + std::to_string(id)});
    }
    writer.close();
    return writer.metrics();
}

void reset(const std::string& table, bool keyed) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table + " (id int" +
              (keyed ? " PRIMARY KEY" : "") + ", v text)");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(writer_commit_outcome)

BOOST_AUTO_TEST_CASE(a_batch_whose_commit_reply_was_lost_is_not_sent_again) {
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.name) {
            test::FaultProxy proxy;
            reset("wc_after", c.keyed);
            const WriterMetrics metrics =
                load_through_cut(proxy, c, "wc_after", test::FaultProxy::Cut::after_commit);
            BOOST_TEST(count_of("wc_after") == "1500/1500");
            BOOST_TEST(metrics.commits_resolved == 1u);
            BOOST_TEST(metrics.retries == 0u);
            BOOST_TEST(metrics.rows_out == 1500u);
            BOOST_TEST(metrics.flushes == 2u);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_batch_whose_commit_never_reached_the_server_is_sent_again_once) {
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.name) {
            test::FaultProxy proxy;
            reset("wc_before", c.keyed);
            const WriterMetrics metrics =
                load_through_cut(proxy, c, "wc_before", test::FaultProxy::Cut::before_commit);
            BOOST_TEST(count_of("wc_before") == "1500/1500");
            BOOST_TEST(metrics.commits_resolved == 1u);
            BOOST_TEST(metrics.retries == 1u);
            BOOST_TEST(metrics.rows_out == 1500u);
        }
    }
}

BOOST_AUTO_TEST_CASE(
    an_unanswerable_commit_is_kept_with_its_question_and_settled_by_the_next_flush) {
    test::FaultProxy proxy;
    reset("wc_unreachable", false);
    Options options;
    options.write_mode = WriteMode::copy;
    options.max_retry_times = 1;
    options.retry_wait_time = 10ms;
    options.batch_write_timeout = 0ms;
    options.background_flush = false;  // only the flushes below ask (commits_resolved counts them)
    auto pool = std::make_shared<ConnectionPool>(
        proxy.options(), ConnectionPool::Settings{1, std::chrono::seconds(5)});
    Writer writer(pool, "wc_unreachable", {"id", "v"}, options);
    for (int id = 0; id < 1000; ++id) {
        writer.write({id, "v" + std::to_string(id)});
    }
    proxy.arm(test::FaultProxy::Cut::after_commit_then_refuse);
    try {
        writer.flush();
        BOOST_FAIL("flush() with the outcome unknowable did not throw");
    } catch (const Error& error) {
        // A connection failure (retry later: the writer asks first); not 08007, which would say
        // the outcome is lost for good.
        BOOST_TEST(error.sqlstate() == "08006");
        BOOST_TEST(error.retryable());
        BOOST_TEST(
            std::string(error.what()).find("checked before the next flush") != std::string::npos,
            error.what());
        // Someone who cannot flush again (a CLI that exits) is told what to check.
        BOOST_TEST(
            error.detail().find("could not be asked whether transaction") != std::string::npos,
            error.detail());
        BOOST_TEST(error.hint().find("check the table for its rows") != std::string::npos,
                   error.hint());
    }
    BOOST_TEST(count_of("wc_unreachable") == "1000/1000");  // it did commit
    BOOST_TEST(writer.metrics().rows_discarded == 0u);
    proxy.refuse(false);
    writer.flush();  // asks again: committed, so nothing is sent twice
    writer.close();
    BOOST_TEST(count_of("wc_unreachable") == "1000/1000");
    BOOST_TEST(writer.metrics().commits_resolved == 2u);
    BOOST_TEST(writer.metrics().rows_out == 1000u);
}

// The writer's own thread asks about a lost COMMIT with back-off between the questions; the
// destructor stops it, and it gives up asking then (as it gives up a retry's back-off) instead
// of making the destructor wait out every question (89.8 s with these settings before).
BOOST_AUTO_TEST_CASE(the_destructor_does_not_wait_out_the_questions_about_a_lost_commit) {
    test::FaultProxy proxy;
    reset("wc_dtor", false);
    Options options;
    options.write_mode = WriteMode::copy;
    options.max_retry_times = 6;
    options.retry_wait_time = 2s;
    options.batch_write_timeout = 50ms;  // the writer's thread flushes, and asks
    auto pool = std::make_shared<ConnectionPool>(
        proxy.options(), ConnectionPool::Settings{1, std::chrono::seconds(5)});
    auto writer =
        std::make_unique<Writer>(pool, "wc_dtor", std::vector<std::string>{"id", "v"}, options);
    proxy.arm(test::FaultProxy::Cut::after_commit_then_refuse);
    for (int id = 0; id < 100; ++id) {
        writer->write({id, "v" + std::to_string(id)});
    }
    // Until the thread has committed (the proxy cut it) and started asking.
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (count_of("wc_dtor") != "100/100" && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(20ms);
    }
    BOOST_TEST_REQUIRE(count_of("wc_dtor") == "100/100");
    std::this_thread::sleep_for(500ms);
    const auto start = std::chrono::steady_clock::now();
    writer.reset();
    BOOST_TEST(test::elapsed_ms(start) < 8000);
}

// The question itself can fail with a server error on a working connection (here 42501: the
// writer's role may not call txid_status(); a statement_timeout would give 57014). That is no
// answer: the batch is kept with its question, never sent again blindly (it committed).
BOOST_AUTO_TEST_CASE(a_lost_commit_whose_question_fails_keeps_the_question_and_is_not_sent_again) {
    test::FaultProxy proxy;
    reset("wc_unasked", false);
    Connection admin = test::connect();
    admin.execute(
        "DROP ROLE IF EXISTS wc_asker; CREATE ROLE wc_asker LOGIN; "
        "GRANT ALL ON wc_unasked TO wc_asker");
    admin.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.txid_status(bigint) FROM PUBLIC");
    struct Restore {
        Connection& admin;
        ~Restore() {
            try {
                admin.execute("GRANT EXECUTE ON FUNCTION pg_catalog.txid_status(bigint) TO PUBLIC");
            } catch (const Error& error) {
                BOOST_ERROR("txid_status() could not be granted back: " << error.what());
            }
        }
    } restore{admin};
    Options options;
    options.write_mode = WriteMode::copy;
    options.max_retry_times = 1;
    options.retry_wait_time = 10ms;
    options.batch_write_timeout = 0ms;
    options.background_flush = false;  // only the flushes below send
    ConnectionOptions as_asker = proxy.options();
    as_asker.set("user", "wc_asker");
    auto pool = std::make_shared<ConnectionPool>(
        as_asker, ConnectionPool::Settings{1, std::chrono::seconds(5)});
    Writer writer(pool, "wc_unasked", {"id", "v"}, options);
    for (int id = 0; id < 1000; ++id) {
        writer.write({id, "v" + std::to_string(id)});
    }
    proxy.arm(test::FaultProxy::Cut::after_commit);
    const Error error = test::error_of([&] { writer.flush(); });
    // Refused (not unreachable): not retryable, so a caller's retry loop does not spin on it.
    BOOST_TEST(error.sqlstate() == "08007", error.what());
    BOOST_TEST(!error.retryable());
    BOOST_TEST(error.detail().find("42501") != std::string::npos, error.detail());
    BOOST_TEST(count_of("wc_unasked") == "1000/1000");  // it did commit
    admin.execute("GRANT EXECUTE ON FUNCTION pg_catalog.txid_status(bigint) TO PUBLIC");
    writer.flush();  // asks again: committed, so nothing is sent twice
    writer.close();
    BOOST_TEST(count_of("wc_unasked") == "1000/1000");
    BOOST_TEST(writer.metrics().rows_out == 1000u);
    BOOST_TEST(writer.metrics().rows_discarded == 0u);
    admin.execute("DROP TABLE wc_unasked; DROP ROLE wc_asker");
}

BOOST_AUTO_TEST_SUITE_END()
