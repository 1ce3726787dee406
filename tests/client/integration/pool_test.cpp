// ConnectionPool against a live server: bounds, deadlines, health checks, reuse, threads.
#include <atomic>
#include <memory>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <libpq-fe.h>

#include <pg_ingest/pool.hpp>
#include <pg_ingest/schema.hpp>

#include "fault_proxy.hpp"
#include "test_support.hpp"

using namespace pg_ingest;
using namespace std::chrono_literals;

namespace {

ConnectionPool::Clock::time_point in(std::chrono::milliseconds delay) {
    return ConnectionPool::Clock::now() + delay;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pool)

BOOST_AUTO_TEST_CASE(a_returned_connection_is_reused) {
    ConnectionPool pool(test::options(), {2, 5s});
    int pid = 0;
    {
        auto lease = pool.acquire(in(5s));
        pid = lease->backend_pid();
        BOOST_TEST(pool.leased() == 1u);
    }
    BOOST_TEST(pool.leased() == 0u);
    BOOST_TEST(pool.idle() == 1u);
    auto lease = pool.acquire(in(5s));
    BOOST_TEST(lease->backend_pid() == pid);
}

// A deadline the lessee set on its connection is not handed to the next lessee.
BOOST_AUTO_TEST_CASE(a_reused_connection_comes_back_without_the_last_lessees_session_state) {
    ConnectionPool pool(test::options(), {1, 5s});
    auto notices = std::make_shared<std::vector<std::string>>();
    int pid = 0;
    {
        auto lease = pool.acquire(in(5s));
        pid = lease->backend_pid();
        lease->set_notice_handler([notices](const std::string& text) { notices->push_back(text); });
        lease->execute(
            "SET search_path = nowhere; SET statement_timeout = 123456; "
            "SET ROLE pg_read_all_data; CREATE TEMP TABLE pool_left_behind (i int)");
    }
    auto lease = pool.acquire(in(5s));
    BOOST_TEST(lease->backend_pid() == pid);  // the same session, reset
    const Result r = lease->execute(
        "SELECT current_setting('search_path'), current_setting('statement_timeout'), "
        "current_user = session_user, to_regclass('pg_temp.pool_left_behind') IS NULL");
    BOOST_TEST(*r.get(0, 0) == "\"$user\", public");
    BOOST_TEST(*r.get(0, 1) == "0");
    BOOST_TEST(*r.get(0, 2) == "t");
    BOOST_TEST(*r.get(0, 3) == "t");
    // The first lessee's notice handler went with its lease.
    lease->execute("DO $$ BEGIN RAISE NOTICE 'for the second lessee'; END $$");
    BOOST_TEST(notices->empty());
}

// A returned session is reset when it comes back, not when it is next leased: while it sits
// idle it holds no advisory lock, LISTEN or temporary table of its last lessee, and the next
// lessee gets none of the notifications meant for the last one, neither one libpq had already
// read before the return nor one sent to the channel while the session was idle.
BOOST_AUTO_TEST_CASE(an_idle_session_holds_nothing_of_its_last_lessee) {
    ConnectionPool pool(test::options(), {1, 5s});
    Connection other = test::connect();
    int pid = 0;
    {
        auto lease = pool.acquire(in(5s));
        pid = lease->backend_pid();
        lease->execute(
            "SELECT pg_advisory_lock(42); LISTEN pool_idle_channel; "
            "CREATE TEMP TABLE pool_idle_temp (i int)");
        other.execute("NOTIFY pool_idle_channel, 'before the return'");
        // The lessee's libpq reads the notification with this answer at the latest.
        lease->execute("SELECT pg_sleep(0.1)");
    }
    BOOST_TEST(pool.idle() == 1u);
    BOOST_TEST(*other.execute("SELECT pg_try_advisory_lock(42)").get(0, 0) == "t");
    other.execute("SELECT pg_advisory_unlock_all()");
    BOOST_TEST(*other
                    .execute("SELECT count(*) FROM pg_catalog.pg_class "
                             "WHERE relname = 'pool_idle_temp'")
                    .get(0, 0) == "0");
    other.execute("NOTIFY pool_idle_channel, 'while idle'");
    auto lease = pool.acquire(in(5s));
    BOOST_TEST(lease->backend_pid() == pid);  // the same session
    lease->execute("SELECT pg_sleep(0.1)");   // reads anything the server sent it meanwhile
    std::vector<std::string> seen;
    while (PGnotify* notify = PQnotifies(static_cast<PGconn*>(lease->native_handle()))) {
        seen.emplace_back(notify->extra);
        PQfreemem(notify);
    }
    BOOST_TEST(seen.empty(), "the next lessee got: " << (seen.empty() ? "" : seen.front()));
    BOOST_TEST(
        *lease->execute("SELECT count(*) FROM pg_catalog.pg_listening_channels()").get(0, 0) ==
        "0");
}

// The reset on return is bounded by ping_timeout: a session whose DISCARD ALL goes unanswered
// (a silent network) is dropped, not pooled, and the lease's destructor returns meanwhile.
BOOST_AUTO_TEST_CASE(a_session_whose_reset_goes_unanswered_is_dropped_at_the_ping_timeout) {
    test::FaultProxy proxy;
    ConnectionPool pool(proxy.options(), {1, 300ms});
    auto lease = std::make_unique<ConnectionPool::Lease>(pool.acquire(in(5s)));
    const int pid = (*lease)->backend_pid();
    proxy.arm_silence("DISCARD ALL");
    const auto start = std::chrono::steady_clock::now();
    lease.reset();
    const auto took = test::elapsed_ms(start);
    BOOST_TEST(proxy.cuts() == 1);
    BOOST_TEST(took >= 290);
    BOOST_TEST(took < 2000);
    BOOST_TEST(pool.idle() == 0u);
    BOOST_TEST(pool.leased() == 0u);
    auto next = pool.acquire(in(5s));
    BOOST_TEST(next->backend_pid() != pid);
}

BOOST_AUTO_TEST_CASE(a_returned_connection_comes_back_without_the_lessees_deadline) {
    ConnectionPool pool(test::options(), {1, 5s});
    int pid = 0;
    {
        auto lease = pool.acquire(in(5s));
        pid = lease->backend_pid();
        lease->set_deadline(in(-1000ms));
    }
    auto lease = pool.acquire(in(5s));
    BOOST_TEST(lease->backend_pid() == pid);  // the same session
    BOOST_CHECK(lease->deadline() == pg_ingest::Connection::Clock::time_point::max());
    BOOST_TEST(*lease->execute("SELECT 'usable'").get(0, 0) == "usable");
}

BOOST_AUTO_TEST_CASE(a_deadline_already_past_times_out_and_keeps_the_idle_connection) {
    ConnectionPool pool(test::options(), {2, 5s});
    int pid = 0;
    {
        auto lease = pool.acquire(in(5s));
        pid = lease->backend_pid();
    }
    BOOST_CHECK_THROW(pool.acquire(ConnectionPool::Clock::now() - 1s), Error);
    BOOST_TEST(pool.idle() == 1u);
    BOOST_TEST(pool.leased() == 0u);
    auto lease = pool.acquire(in(5s));
    BOOST_TEST(lease->backend_pid() == pid);
}

BOOST_AUTO_TEST_CASE(acquire_waits_for_a_lease_and_times_out_at_the_deadline) {
    ConnectionPool pool(test::options(), {1, 5s});
    auto held = pool.acquire(in(5s));
    const auto start = std::chrono::steady_clock::now();
    try {
        pool.acquire(in(300ms));
        BOOST_FAIL("acquired beyond connectionmaxactive");
    } catch (const Error& error) {
        BOOST_TEST(error.sqlstate() == "08001");
        BOOST_TEST(error.retryable());
        BOOST_TEST(std::string(error.what()).find("connectionmaxactive") != std::string::npos);
    }
    const auto waited = test::elapsed_ms(start);
    BOOST_TEST(waited >= 250);
    BOOST_TEST(waited < 2000);
    // A lease returned while another thread waits is handed over.
    std::thread releaser([&] {
        std::this_thread::sleep_for(100ms);
        ConnectionPool::Lease gone = std::move(held);
    });
    auto next = pool.acquire(in(5s));
    BOOST_TEST(next->is_open());
    releaser.join();
}

BOOST_AUTO_TEST_CASE(a_dead_idle_connection_is_replaced_on_acquire) {
    ConnectionPool pool(test::options(), {1, 5s});
    int pid = 0;
    {
        auto lease = pool.acquire(in(5s));
        pid = lease->backend_pid();
    }
    Connection killer = test::connect();
    killer.execute_params("SELECT pg_terminate_backend($1::int, 5000)", {std::to_string(pid)});
    auto lease = pool.acquire(in(5s));
    BOOST_TEST(lease->is_open());
    BOOST_TEST(lease->backend_pid() != pid);
    BOOST_TEST(*lease->execute("SELECT 1").get(0, 0) == "1");
}

BOOST_AUTO_TEST_CASE(connections_in_a_transaction_or_discarded_are_not_returned) {
    ConnectionPool pool(test::options(), {2, 5s});
    {
        auto lease = pool.acquire(in(5s));
        lease->execute("BEGIN");
    }
    BOOST_TEST(pool.idle() == 0u);
    {
        auto lease = pool.acquire(in(5s));
        lease.discard();
    }
    BOOST_TEST(pool.idle() == 0u);
    BOOST_TEST(pool.leased() == 0u);
}

BOOST_AUTO_TEST_CASE(many_threads_never_exceed_max_active) {
    ConnectionPool pool(test::options(), {3, 5s});
    std::atomic<int> inside{0};
    std::atomic<int> peak{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 20; ++i) {
                try {
                    auto lease = pool.acquire(in(20s));
                    const int now = ++inside;
                    int seen = peak.load();
                    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
                    }
                    lease->execute("SELECT pg_sleep(0.001)");
                    --inside;
                } catch (const std::exception&) {
                    ++failures;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    BOOST_TEST(failures.load() == 0);
    BOOST_TEST(peak.load() <= 3);
    BOOST_TEST(pool.idle() <= 3u);
}

BOOST_AUTO_TEST_CASE(a_lease_may_outlive_its_pool) {
    std::optional<ConnectionPool::Lease> lease;
    {
        ConnectionPool pool(test::options(), {1, 5s});
        lease.emplace(pool.acquire(in(5s)));
    }
    BOOST_TEST(*(*lease)->execute("SELECT 2").get(0, 0) == "2");
    lease.reset();
}

BOOST_AUTO_TEST_CASE(unreachable_server_fails_acquire_within_the_deadline) {
    ConnectionOptions nowhere;
    nowhere.set("host", "127.0.0.1");
    nowhere.set("port", std::to_string(test::unused_tcp_port()));
    ConnectionPool pool(nowhere, {2, 5s});
    BOOST_CHECK_THROW(pool.acquire(in(2s)), Error);
    BOOST_TEST(pool.leased() == 0u);
}

// A server that accepts and then says nothing: the deadline holds while connecting.
BOOST_AUTO_TEST_CASE(a_silent_server_fails_acquire_at_the_deadline) {
    const test::SilentListener listener(test::SilentListener::Mode::completes_handshake);
    ConnectionOptions silent;
    silent.set("host", "127.0.0.1");
    silent.set("port", std::to_string(listener.port()));
    ConnectionPool pool(silent, {2, 5s});
    const auto start = std::chrono::steady_clock::now();
    const Error error = test::error_of([&] { pool.acquire(in(700ms)); });
    const auto waited = test::elapsed_ms(start);
    BOOST_TEST(error.sqlstate() == "08001", error.what());
    BOOST_TEST(waited >= 650);
    BOOST_TEST(waited < 2500);
    BOOST_TEST(pool.leased() == 0u);
}

// put_back() wakes one waiter. When that one's deadline has just passed, it must hand the
// wake-up on: a second waiter with time left gets the returned session, instead of waiting
// for nothing until its own deadline while the session sits idle. The return is timed just
// before the first waiter's deadline, repeatedly, to land in that window.
BOOST_AUTO_TEST_CASE(a_waiter_that_gives_up_hands_the_returned_session_on) {
    ConnectionPool pool(test::options(), {1, 5s});
    int late = 0;
    for (int round = 0; round < 20; ++round) {
        BOOST_TEST_CONTEXT("round " << round) {
            auto held = std::make_unique<ConnectionPool::Lease>(pool.acquire(in(5s)));
            const auto first_deadline = in(200ms);
            std::thread first([&] {
                try {
                    auto lease = pool.acquire(first_deadline);  // returned at once
                } catch (const Error&) {
                }
            });
            std::atomic<long long> second_waited{-1};
            std::thread second([&] {
                const auto start = std::chrono::steady_clock::now();
                try {
                    auto lease = pool.acquire(in(3s));
                    second_waited = test::elapsed_ms(start);
                } catch (const Error&) {
                }
            });
            std::this_thread::sleep_until(first_deadline - std::chrono::microseconds(300));
            held.reset();
            first.join();
            second.join();
            BOOST_TEST(second_waited.load() >= 0);  // it got the session
            late += second_waited.load() > 1500 ? 1 : 0;
        }
    }
    BOOST_TEST(late == 0);
}

BOOST_AUTO_TEST_CASE(a_pool_without_time_to_check_sessions_is_refused) {
    BOOST_CHECK_THROW(ConnectionPool(test::options(), {1, 0ms}), std::invalid_argument);
    BOOST_CHECK_THROW(ConnectionPool(test::options(), {1, -5ms}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(schema_reads_columns_types_and_keys) {
    Connection c = test::connect();
    c.execute("DROP TABLE IF EXISTS pool_schema");
    c.execute("DROP DOMAIN IF EXISTS pool_positive");
    c.execute("CREATE DOMAIN pool_positive AS int CHECK (VALUE > 0)");
    c.execute(
        "CREATE TABLE pool_schema (a int, b varchar(7) NOT NULL, c numeric(9,3) DEFAULT 0, "
        "d pool_positive, e int[], f point, PRIMARY KEY (b, a), UNIQUE (d))");
    const auto schema = TableSchema::load(c, "POOL_SCHEMA");
    BOOST_TEST(schema.table_name() == "pool_schema");
    BOOST_TEST(schema.schema_name() == "public");
    BOOST_TEST_REQUIRE(schema.columns().size() == 6u);
    BOOST_TEST(schema.columns()[1].type_name == "character varying(7)");
    BOOST_TEST(schema.columns()[1].not_null);
    BOOST_TEST(schema.columns()[2].has_default);
    BOOST_TEST(schema.columns()[3].type_oid == 23u);  // the domain's base type
    BOOST_TEST((schema.columns()[4].type->kind == TypeKind::array));
    BOOST_TEST(!schema.columns()[5].type.has_value());
    BOOST_TEST(schema.primary_key() == (std::vector<std::string>{"b", "a"}));
    BOOST_TEST(schema.unique_keys().size() == 2u);
    BOOST_TEST(schema.qualified_name(c) == "\"public\".\"pool_schema\"");
    BOOST_CHECK_THROW(TableSchema::load(c, "POOL_SCHEMA", "public", true), Error);
}

BOOST_AUTO_TEST_CASE(a_quoted_table_name_with_a_dot_is_the_table_not_schema_and_table) {
    Connection c = test::connect();
    c.execute(
        "DROP SCHEMA IF EXISTS pool_ev CASCADE; DROP TABLE IF EXISTS public.\"pool_ev.log\"; "
        "CREATE SCHEMA pool_ev; CREATE TABLE pool_ev.log (a int, b int); "
        "CREATE TABLE public.\"pool_ev.log\" (only_here int)");
    const auto literal = TableSchema::load(c, "\"pool_ev.log\"", "public");
    BOOST_TEST(literal.schema_name() == "public");
    BOOST_TEST(literal.table_name() == "pool_ev.log");
    BOOST_TEST(literal.columns().size() == 1u);
    const auto split = TableSchema::load(c, "pool_ev.log", "public");
    BOOST_TEST(split.schema_name() == "pool_ev");
    BOOST_TEST(split.columns().size() == 2u);
    // Quoted means exact: the case must match.
    BOOST_CHECK_THROW(TableSchema::load(c, "\"POOL_EV.LOG\"", "public"), Error);
    BOOST_CHECK_THROW(TableSchema::load(c, "\"a\"b\"", "public"), Error);
    // Qualified quoted forms: each part read as SQL reads it.
    BOOST_TEST(TableSchema::load(c, "public.\"pool_ev.log\"", "other").columns().size() == 1u);
    BOOST_TEST(TableSchema::load(c, "\"pool_ev\".\"log\"", "public").columns().size() == 2u);
    BOOST_TEST(TableSchema::load(c, "\"pool_ev\".LOG", "public").columns().size() == 2u);
    BOOST_CHECK_THROW(TableSchema::load(c, "\"POOL_EV\".log", "public"), Error);
    BOOST_CHECK_THROW(TableSchema::load(c, "a.b.\"c\"", "public"), Error);
    c.execute("DROP SCHEMA pool_ev CASCADE; DROP TABLE public.\"pool_ev.log\"");
}

BOOST_AUTO_TEST_SUITE_END()
