// Async load jobs (pg_ingest 0.2.0) and AsyncLoader against a live server. The tests use their
// own databases (with and without the extension) so that they do not change the shared one.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/async_job.hpp>
#include <pg_ingest/async_loader.hpp>
#include <pg_ingest/options.hpp>
#include <pg_ingest/connection.hpp>

#include "fault_proxy.hpp"
#include "test_support.hpp"

using pg_ingest::AsyncJob;
using pg_ingest::AsyncLoader;
using pg_ingest::AsyncLoaderOptions;
using pg_ingest::Connection;
using pg_ingest::ConnectionOptions;
using pg_ingest::JobState;
using pg_ingest::Options;
using pg_ingest::QualifiedName;
using namespace std::chrono_literals;

namespace {

// Options for database `name`, created on first use (with the extension when `with_extension`).
ConnectionOptions database(const std::string& name, bool with_extension) {
    Connection admin = test::connect();
    if (admin.execute_params("SELECT 1 FROM pg_database WHERE datname = $1", {name}).rows() == 0) {
        admin.execute("CREATE DATABASE " + admin.quote_identifier(name));
    }
    ConnectionOptions options = test::options();
    options.set("dbname", name);
    if (with_extension) {
        Connection connection = Connection::connect(options, 10s);
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_ingest");
    }
    return options;
}

ConnectionOptions async_db() {
    return database("pg_ingest_async_tests", true);
}

Connection connect_async() {
    return Connection::connect(async_db(), 10s);
}

// `rows` CSV records "id,payload" starting at `first`.
std::string csv_rows(int first, int rows, std::size_t padding = 0) {
    std::string data;
    for (int id = first; id < first + rows; ++id) {
        data +=
            std::to_string(id) + ",row " + std::to_string(id) + std::string(padding, 'x') + "\n";
    }
    return data;
}

AsyncLoaderOptions loader_options(const std::string& table) {
    AsyncLoaderOptions options;
    options.job.target = QualifiedName::parse(table);
    options.job.conflict_mode = "upsert";
    options.parallelism = 2;
    options.queue_size = 2;
    options.max_temp_file_size = 4000;  // a few chunks per job: many jobs, many rollovers
    options.poll_interval = 200ms;
    return options;
}

void reset_table(Connection& connection, const std::string& table) {
    connection.execute("DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table +
                       " (id int PRIMARY KEY, payload text NOT NULL)");
}

// A keyless job on `table`, made afresh.
pg_ingest::BegunJob begin_fresh_job(Connection& connection, const std::string& table) {
    reset_table(connection, table);
    pg_ingest::AsyncJobSpec spec;
    spec.target = QualifiedName::parse(table);
    return pg_ingest::begin_async_load(connection, spec);
}

// count(*), count(DISTINCT id), and whether every payload matches its id.
std::string table_summary(Connection& connection, const std::string& table) {
    return *connection
                .execute(
                    "SELECT count(*) || '/' || count(DISTINCT id) || '/' || "
                    "bool_and(payload = 'row ' || id) FROM " +
                    table)
                .get(0, 0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(async_jobs)

// Newest first by number: job 10 before job 9 (the ids are read as text, and once sorted so).
BOOST_AUTO_TEST_CASE(jobs_are_listed_newest_first_by_number) {
    Connection connection = connect_async();
    reset_table(connection, "aj_order");
    pg_ingest::AsyncJobSpec spec;
    spec.target = QualifiedName::parse("aj_order");
    std::vector<std::int64_t> begun;
    for (int i = 0; i < 12; ++i) {  // ids below and above a power of ten, whatever came before
        begun.push_back(pg_ingest::begin_async_load(connection, spec).id);
    }
    const auto listed = pg_ingest::list_async_load_jobs(connection, std::nullopt);
    BOOST_TEST_REQUIRE(listed.size() >= 12u);
    for (std::size_t i = 1; i < listed.size(); ++i) {
        BOOST_TEST(listed[i - 1].id > listed[i].id, "position " << i);
    }
    BOOST_TEST(listed.front().id == begun.back());
    for (const std::int64_t id : begun) {
        pg_ingest::cancel_async_load(connection, id);
    }
}

BOOST_AUTO_TEST_CASE(job_lifecycle_wait_and_state_errors) {
    Connection connection = connect_async();
    reset_table(connection, "aj_life");
    pg_ingest::AsyncJobSpec spec;
    spec.target = QualifiedName::parse("aj_life");
    spec.job_key = "life-1";
    const auto job = pg_ingest::begin_async_load(connection, spec);
    BOOST_TEST(job.id > 0);
    BOOST_CHECK(job.state == JobState::init);
    BOOST_TEST(!job.staging.empty());
    connection.execute("INSERT INTO " + job.staging + " VALUES (1, 'row 1'), (2, 'row 2')");

    // The same key returns the same job.
    const auto again = pg_ingest::begin_async_load(connection, spec);
    BOOST_TEST(again.id == job.id);

    BOOST_CHECK(pg_ingest::submit_async_load(connection, job.id) == JobState::ready);
    const auto jobs = pg_ingest::wait_async_load_jobs(
        connection, {job.id}, std::chrono::steady_clock::now() + 60s, 200ms);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_inserted == 2);
    BOOST_TEST(jobs[0].job_key == "life-1");
    BOOST_TEST(table_summary(connection, "aj_life") == "2/2/true");

    const auto listed =
        pg_ingest::list_async_load_jobs(connection, QualifiedName::parse("aj_life"));
    BOOST_TEST_REQUIRE(listed.size() == 1u);
    BOOST_TEST(listed[0].id == job.id);
    BOOST_TEST(pg_ingest::get_async_load_job(connection, job.id).rows_inserted == 2);

    // Wrong state and unknown id are typed errors.
    BOOST_TEST(test::error_of([&] {
                   pg_ingest::submit_async_load(connection, job.id);
               }).sqlstate() == "55000");
    BOOST_TEST(test::error_of([&] {
                   pg_ingest::retry_async_load(connection, job.id);
               }).sqlstate() == "55000");
    BOOST_TEST(test::error_of([&] {
                   pg_ingest::get_async_load_job(connection, 987654321);
               }).sqlstate() == "42704");
    BOOST_TEST(test::error_of([&] {
                   pg_ingest::wait_async_load_jobs(connection, {987654321},
                                                   std::chrono::steady_clock::now() + 5s);
               }).sqlstate() == "42704");
}

BOOST_AUTO_TEST_CASE(wait_is_woken_by_the_jobs_notification_not_by_its_poll_interval) {
    Connection connection = connect_async();
    const auto job = begin_fresh_job(connection, "aj_notify");
    connection.execute("INSERT INTO " + job.staging + " VALUES (1, 'row 1')");
    // The job cannot finish before wait() starts: another session holds the target.
    Connection blocker = connect_async();
    blocker.execute("BEGIN; LOCK TABLE aj_notify IN ACCESS EXCLUSIVE MODE");
    BOOST_CHECK(pg_ingest::submit_async_load(connection, job.id) == JobState::ready);
    // A poll interval far beyond the deadline: only the job's NOTIFY can end the wait in time.
    auto waiting = std::async(std::launch::async, [&] {
        return pg_ingest::wait_async_load_jobs(connection, {job.id},
                                               std::chrono::steady_clock::now() + 30s, 60s);
    });
    BOOST_TEST_REQUIRE((waiting.wait_for(1s) == std::future_status::timeout),
                       "wait() returned while the job could not run");
    blocker.execute("COMMIT");
    const auto released = std::chrono::steady_clock::now();
    BOOST_TEST_REQUIRE((waiting.wait_for(10s) == std::future_status::ready),
                       "wait() did not end within 10 s of the job's end (poll interval 60 s)");
    const auto jobs = waiting.get();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - released);
    BOOST_TEST_MESSAGE("wait() returned " << took.count() << " ms after the target was released");
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK_MESSAGE(jobs[0].state == JobState::finish,
                        "job ended " << to_string(jobs[0].state) << ": " << jobs[0].error_sqlstate
                                     << " " << jobs[0].error_message);
    BOOST_TEST(table_summary(connection, "aj_notify") == "1/1/true");
    // Between waits the connection does not listen: every job's notifications would pile up.
    BOOST_TEST(*connection.execute("SELECT count(*) FROM pg_listening_channels()").get(0, 0) ==
               "0");
}

// The other half: a state change that sends no notification (here an administrator's UPDATE
// of the job table) is still seen, by the re-read every poll interval.
BOOST_AUTO_TEST_CASE(wait_sees_a_change_without_notification_at_its_poll_interval) {
    Connection connection = connect_async();
    const auto job = begin_fresh_job(connection, "aj_poll");
    auto waiting = std::async(std::launch::async, [&] {
        return pg_ingest::wait_async_load_jobs(connection, {job.id},
                                               std::chrono::steady_clock::now() + 30s, 300ms);
    });
    BOOST_TEST_REQUIRE((waiting.wait_for(1s) == std::future_status::timeout),
                       "wait() returned while the job was open");
    Connection admin = connect_async();
    admin.execute("UPDATE ingest.async_load_job SET state = 'CANCEL' WHERE id = " +
                  std::to_string(job.id));
    const auto changed = std::chrono::steady_clock::now();
    BOOST_TEST_REQUIRE((waiting.wait_for(10s) == std::future_status::ready),
                       "wait() did not see the change within 10 s (poll interval 300 ms)");
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - changed);
    BOOST_TEST_MESSAGE("wait() returned " << took.count() << " ms after the change");
    const auto jobs = waiting.get();
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::cancel);
}

BOOST_AUTO_TEST_CASE(wait_returns_at_the_deadline_with_the_current_state) {
    Connection connection = connect_async();
    const auto job = begin_fresh_job(connection, "aj_deadline");
    const auto start = std::chrono::steady_clock::now();
    const auto jobs = pg_ingest::wait_async_load_jobs(connection, {job.id}, start + 700ms, 200ms);
    const auto waited = test::elapsed_ms(start);
    BOOST_CHECK(jobs.at(0).state == JobState::init);
    BOOST_TEST(waited >= 650);
    BOOST_TEST(waited < 5000);
    // A deadline long past still gets one read, and the connection stays open.
    const auto late = pg_ingest::wait_async_load_jobs(connection, {job.id}, start - 60s);
    BOOST_CHECK(late.at(0).state == JobState::init);
    BOOST_TEST(connection.is_open());
    BOOST_CHECK(pg_ingest::cancel_async_load(connection, job.id) == JobState::cancel);
}

BOOST_AUTO_TEST_CASE(failed_job_reports_the_error_and_retry_requeues_it) {
    Connection connection = connect_async();
    connection.execute(
        "DROP TABLE IF EXISTS aj_fail; CREATE TABLE aj_fail (id int PRIMARY KEY, payload text "
        "NOT NULL CHECK (payload <> 'bad'))");
    pg_ingest::AsyncJobSpec spec;
    spec.target = QualifiedName::parse("aj_fail");
    spec.exception_mode = "strict";
    const auto job = pg_ingest::begin_async_load(connection, spec);
    connection.execute("INSERT INTO " + job.staging + " VALUES (1, 'ok'), (2, 'bad')");
    pg_ingest::submit_async_load(connection, job.id);
    auto jobs = pg_ingest::wait_async_load_jobs(connection, {job.id},
                                                std::chrono::steady_clock::now() + 60s, 200ms);
    BOOST_CHECK(jobs.at(0).state == JobState::fail);
    BOOST_TEST(jobs.at(0).error_sqlstate == "23514");
    BOOST_TEST(*connection.execute("SELECT count(*) FROM aj_fail").get(0, 0) == "0");
    BOOST_CHECK(pg_ingest::retry_async_load(connection, job.id) == JobState::ready);
    jobs = pg_ingest::wait_async_load_jobs(connection, {job.id},
                                           std::chrono::steady_clock::now() + 60s, 200ms);
    BOOST_CHECK(jobs.at(0).state == JobState::fail);
    BOOST_TEST(jobs.at(0).attempts == 1);  // runs since the retry (the retry starts them afresh)
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(async_loader)

// The connector vocabulary reaches the loader through AsyncLoaderOptions::from():
// clean_temp_data=false keeps each job's staging table after the job, true (the default) drops
// it; async_load_parallelism, async_load_queue_size and max_temp_file_size are the loader's.
BOOST_AUTO_TEST_CASE(options_from_the_connector_vocabulary_and_clean_temp_data) {
    for (const bool clean : {true, false}) {
        BOOST_TEST_CONTEXT("clean_temp_data " << clean) {
            Connection connection = connect_async();
            reset_table(connection, "al_clean");
            const Options options =
                Options::from_map({{"sink.async_load_parallelism", "2"},
                                   {"sink.async_load_queue_size", "3"},
                                   {"sink.max_temp_file_size", "3000"},
                                   {"sink.clean_temp_data", clean ? "true" : "false"},
                                   {"conflictmode", "ignore"}});
            AsyncLoaderOptions loader_options =
                AsyncLoaderOptions::from(options, QualifiedName::parse("al_clean"));
            BOOST_TEST(loader_options.parallelism == 2u);
            BOOST_TEST(loader_options.queue_size == 3u);
            BOOST_TEST(loader_options.max_temp_file_size == 3000u);
            BOOST_TEST(loader_options.job.keep_staging == !clean);
            BOOST_TEST(loader_options.job.conflict_mode == "ignore");
            BOOST_TEST(loader_options.job.target.schema == "public");
            loader_options.poll_interval = 200ms;
            AsyncLoader loader(async_db(), loader_options);
            loader.begin(std::string("clean-") + (clean ? "on" : "off"));
            for (int first = 1; first <= 300; first += 100) {
                BOOST_TEST(loader.stage(csv_rows(first, 100), 100));
            }
            const auto jobs = loader.wait(std::chrono::steady_clock::now() + 60s);
            BOOST_TEST(jobs.size() >= 2u);  // 3000 bytes per job: it rolled over
            std::string ids;
            for (const auto& job : jobs) {
                BOOST_CHECK(job.state == JobState::finish);
                ids += (ids.empty() ? "" : ",") + std::to_string(job.id);
            }
            BOOST_TEST(table_summary(connection, "al_clean") == "300/300/true");
            // The staging tables of the jobs that still exist in the catalog.
            const std::string left = *connection
                                          .execute(
                                              "SELECT count(*) FROM ingest.async_load_job j "
                                              "JOIN pg_catalog.pg_class c ON c.oid = "
                                              "j.staging WHERE j.id IN (" +
                                              ids + ")")
                                          .get(0, 0);
            BOOST_TEST(left == (clean ? "0" : std::to_string(jobs.size())));
        }
    }
}

BOOST_AUTO_TEST_CASE(queue_two_parallel_two_loads_every_row_exactly_once) {
    Connection connection = connect_async();
    reset_table(connection, "al_basic");
    AsyncLoader loader(async_db(), loader_options("al_basic"));
    const int rows = 6000;
    loader.begin("basic-cp1");
    for (int first = 1; first <= rows; first += 100) {
        BOOST_TEST(loader.stage(csv_rows(first, 100), 100));
    }
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST(jobs.size() > 5u);  // rolled over max_temp_file_size many times
    for (const auto& job : jobs) {
        BOOST_TEST_CONTEXT("job " << job.id) {
            BOOST_CHECK(job.state == JobState::finish);
            BOOST_TEST(job.job_key.rfind("basic-cp1", 0) == 0u);
        }
    }
    BOOST_TEST(loader.rows_staged() == static_cast<std::uint64_t>(rows));
    BOOST_TEST(table_summary(connection, "al_basic") == "6000/6000/true");
}

// Keys resume a unit only for the same data in the same chunks. A run that cuts the same rows
// into other chunks would leave the earlier run's job at another row than it ended, skipping
// or loading rows twice: it fails when it leaves that job (55000), before staging anything.
BOOST_AUTO_TEST_CASE(a_resumed_unit_cut_into_other_chunks_is_refused) {
    Connection connection = connect_async();
    reset_table(connection, "al_chunks");
    {
        AsyncLoader first(async_db(), loader_options("al_chunks"));
        first.begin("chunks-cp");
        for (int row = 1; row <= 600; row += 100) {
            first.stage(csv_rows(row, 100), 100);
        }
        const auto jobs = first.wait(std::chrono::steady_clock::now() + 120s);
        BOOST_TEST_REQUIRE(jobs.size() >= 2u);  // rolled over: the first job holds some chunks
    }
    const auto job_count = [&] {
        return connection
            .execute("SELECT count(*) FROM ingest.async_load_job WHERE job_key LIKE 'chunks-cp%'")
            .get(0, 0)
            .value_or("");
    };
    const std::string before = job_count();
    AsyncLoader second(async_db(), loader_options("al_chunks"));
    second.begin("chunks-cp");
    const pg_ingest::Error error = test::error_of([&] {
        for (int row = 1; row <= 600; row += 30) {
            second.stage(csv_rows(row, 30), 30);
        }
        second.wait(std::chrono::steady_clock::now() + 60s);
    });
    BOOST_TEST(error.sqlstate() == "55000");
    BOOST_TEST(std::string(error.what()).find("chunks-cp") != std::string::npos);
    BOOST_TEST(second.rows_staged() == 0u);
    BOOST_TEST(job_count() == before);
    BOOST_TEST(table_summary(connection, "al_chunks") == "600/600/true");
}

BOOST_AUTO_TEST_CASE(holds_back_while_queue_size_jobs_are_queued) {
    Connection connection = connect_async();
    reset_table(connection, "al_queue");
    // SHARE conflicts with the workers' inserts but not with beginning jobs: jobs stay queued.
    Connection blocker = connect_async();
    blocker.execute("BEGIN; LOCK TABLE al_queue IN SHARE MODE");

    std::atomic<int> chunks{0};
    std::atomic<bool> done{false};
    std::exception_ptr error;
    std::thread producer([&] {
        try {
            AsyncLoader loader(async_db(), loader_options("al_queue"));
            loader.begin("queue-cp");
            for (int first = 1; first <= 3000; first += 100) {
                loader.stage(csv_rows(first, 100), 100);
                ++chunks;
            }
            const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
            for (const auto& job : jobs) {
                if (job.state != JobState::finish) {
                    throw std::runtime_error("job " + std::to_string(job.id) + " did not finish");
                }
            }
        } catch (...) {
            error = std::current_exception();
        }
        done = true;
    });
    // Wait until the producer stops making progress.
    int last = -1;
    for (int i = 0; i < 100 && chunks.load() != last; ++i) {
        last = chunks.load();
        std::this_thread::sleep_for(1500ms);
    }
    BOOST_TEST(!done.load());
    BOOST_TEST(chunks.load() < 30);
    const auto queued = *connection
                             .execute(
                                 "SELECT count(*) FILTER (WHERE state IN ('READY','LOADING'))"
                                 " || '/' || count(*) FROM ingest.get_async_load_job() "
                                 "WHERE target = 'al_queue'::regclass")
                             .get(0, 0);
    BOOST_TEST(queued == "2/2");  // two submitted and waiting; the third not begun
    blocker.execute("COMMIT");
    producer.join();
    if (error) {
        std::rethrow_exception(error);
    }
    BOOST_TEST(chunks.load() == 30);
    BOOST_TEST(table_summary(connection, "al_queue") == "3000/3000/true");
}

// A passed deadline ends the call with 57014 and leaves the loader usable: repeating the call
// carries on, and every row is loaded once (an append into a keyed table: a chunk staged twice
// would fail its job with 23505).
BOOST_AUTO_TEST_CASE(deadlines_end_blocked_calls_and_the_repeated_call_carries_on) {
    Connection connection = connect_async();
    reset_table(connection, "al_deadline");
    AsyncLoaderOptions options = loader_options("al_deadline");
    options.job.conflict_mode = "none";
    AsyncLoader loader(async_db(), options);
    using Clock = std::chrono::steady_clock;

    // A control statement waiting for a lock: beginning a job needs the target.
    Connection blocker = connect_async();
    blocker.execute("BEGIN; LOCK TABLE al_deadline IN ACCESS EXCLUSIVE MODE");
    auto start = Clock::now();
    auto error = test::error_of([&] { loader.begin("deadline-cp", start + 700ms); });
    BOOST_TEST(error.sqlstate() == "57014", error.what());
    BOOST_TEST(test::elapsed_ms(start) < 700 + 1500);
    blocker.execute("COMMIT");
    loader.begin("deadline-cp");

    // The queue held back (workers blocked by a SHARE lock): stage() ends at its deadline
    // before taking its chunk; the chunk is staged again afterwards.
    blocker.execute("BEGIN; LOCK TABLE al_deadline IN SHARE MODE");
    int timeouts = 0;
    int first = 1;
    while (first <= 3000) {
        start = Clock::now();
        try {
            loader.stage(csv_rows(first, 100), 100, start + 500ms);
            first += 100;
        } catch (const pg_ingest::Error& e) {
            BOOST_TEST_REQUIRE(e.sqlstate() == "57014", e.what());
            BOOST_TEST(test::elapsed_ms(start) < 500 + 1500);
            if (++timeouts == 2) {
                blocker.execute("COMMIT");
            }
        }
    }
    BOOST_TEST(timeouts == 2);
    const auto jobs = loader.wait(Clock::now() + 120s);
    for (const auto& job : jobs) {
        BOOST_CHECK(job.state == JobState::finish);
    }
    BOOST_TEST(table_summary(connection, "al_deadline") == "3000/3000/true");
}

// statement_timeout holds at most INT_MAX ms (~24.8 days): a deadline further away than that
// bounds nothing on the server and must not make the SET fail (22023) and fail the loader.
BOOST_AUTO_TEST_CASE(a_deadline_weeks_away_loads_as_without_one) {
    Connection connection = connect_async();
    reset_table(connection, "al_far");
    AsyncLoader loader(async_db(), loader_options("al_far"));
    const auto far = std::chrono::steady_clock::now() + std::chrono::hours(24 * 60);
    loader.begin("far-cp1", far);
    BOOST_TEST(loader.stage(csv_rows(1, 100), 100, far));
    loader.submit(far);
    const auto jobs = loader.wait(far);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_far") == "100/100/true");
}

// The server removes ended jobs after ingest.job_retention; a loader that runs longer must
// not fail its next wait() on a job it already saw end.
BOOST_AUTO_TEST_CASE(wait_survives_the_removal_of_a_job_it_saw_end) {
    Connection connection = connect_async();
    reset_table(connection, "al_retention");
    AsyncLoader loader(async_db(), loader_options("al_retention"));
    loader.begin("retention-cp1");
    loader.stage(csv_rows(1, 100), 100);
    auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    const std::int64_t first = jobs[0].id;
    // What the launcher's retention pass does to an old ended job.
    connection.execute("DELETE FROM ingest.async_load_job WHERE id = " + std::to_string(first));
    loader.begin("retention-cp2");
    loader.stage(csv_rows(101, 100), 100);
    jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 2u);
    BOOST_TEST(jobs[0].id == first);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_CHECK(jobs[1].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_retention") == "200/200/true");
    // Back-pressure (queue_size 2, two jobs so far) must not read the removed job either.
    loader.begin("retention-cp3");
    loader.stage(csv_rows(201, 100), 100);
    jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 3u);
    BOOST_TEST(jobs[0].id == first);
    BOOST_CHECK(jobs[2].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_retention") == "300/300/true");
}

// A job removed before the loader ever saw it end: wait() cannot tell how it ended, and says so
// (42704 naming the job and ingest.job_retention) instead of "does not exist or belongs to
// another role", also when asked again.
BOOST_AUTO_TEST_CASE(wait_reports_a_job_removed_before_it_saw_it_end) {
    Connection connection = connect_async();
    reset_table(connection, "al_removed");
    AsyncLoader loader(async_db(), loader_options("al_removed"));
    loader.begin("removed-cp1");
    loader.stage(csv_rows(1, 100), 100);
    loader.submit(std::chrono::steady_clock::now() + 60s);
    BOOST_TEST_REQUIRE(loader.job_ids().size() == 1u);
    const std::string id = std::to_string(loader.job_ids()[0]);
    const auto until = std::chrono::steady_clock::now() + 120s;
    while (connection.execute("SELECT state FROM ingest.async_load_job WHERE id = " + id)
               .get(0, 0)
               .value_or("") != "FINISH") {
        BOOST_TEST_REQUIRE((std::chrono::steady_clock::now() < until), "job " << id << " ended");
        std::this_thread::sleep_for(20ms);
    }
    connection.execute("DELETE FROM ingest.async_load_job WHERE id = " + id);
    for (int call = 0; call < 2; ++call) {
        try {
            loader.wait(std::chrono::steady_clock::now() + 60s);
            BOOST_FAIL("wait() returned for a job it cannot know the end of");
        } catch (const pg_ingest::Error& e) {
            BOOST_TEST(e.sqlstate() == "42704");
            BOOST_TEST(std::string(e.what()).find("job " + id + " was removed by the server") !=
                       std::string::npos);
            BOOST_TEST(e.detail().find("ingest.job_retention") != std::string::npos);
        }
    }
}

// A restarted loader that finds its key's job already ended at begin() reads how it ended then:
// when retention removes the job before wait(), wait() still reports it, with its counts.
BOOST_AUTO_TEST_CASE(wait_reports_a_job_found_ended_at_begin_after_it_is_removed) {
    Connection connection = connect_async();
    reset_table(connection, "al_removed");
    std::int64_t id = 0;
    {
        AsyncLoader first(async_db(), loader_options("al_removed"));
        first.begin("found-ended-cp1");
        first.stage(csv_rows(1, 100), 100);
        const auto jobs = first.wait(std::chrono::steady_clock::now() + 120s);
        BOOST_TEST_REQUIRE(jobs.size() == 1u);
        BOOST_REQUIRE(jobs[0].state == JobState::finish);
        id = jobs[0].id;
    }
    AsyncLoader restarted(async_db(), loader_options("al_removed"));
    restarted.begin("found-ended-cp1");
    BOOST_TEST(restarted.stage(csv_rows(1, 100), 100) == false);  // skipped: loaded already
    connection.execute("DELETE FROM ingest.async_load_job WHERE id = " + std::to_string(id));
    const auto jobs = restarted.wait(std::chrono::steady_clock::now() + 60s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_TEST(jobs[0].id == id);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_inserted == 100);
    BOOST_TEST(table_summary(connection, "al_removed") == "100/100/true");
}

// A submitted job that ends and is removed before the loader read it again: back-pressure
// counts it as ended (only ended jobs are removed) instead of failing the loader with 42704.
BOOST_AUTO_TEST_CASE(back_pressure_counts_a_removed_queued_job_as_ended) {
    Connection connection = connect_async();
    reset_table(connection, "al_removed");
    AsyncLoaderOptions options = loader_options("al_removed");
    options.queue_size = 2;
    AsyncLoader loader(async_db(), options);
    loader.begin("removed-cp1");
    loader.stage(csv_rows(1, 100), 100);
    loader.submit();
    BOOST_TEST_REQUIRE(loader.job_ids().size() == 1u);
    const std::int64_t first = loader.job_ids()[0];
    // Ended, as read by another session (the loader never read it again).
    const auto ended = pg_ingest::wait_async_load_jobs(
        connection, {first}, std::chrono::steady_clock::now() + 120s, 200ms);
    BOOST_TEST_REQUIRE(ended.size() == 1u);
    BOOST_REQUIRE(ended[0].state == JobState::finish);
    connection.execute("DELETE FROM ingest.async_load_job WHERE id = " + std::to_string(first));
    loader.begin("removed-cp2");
    loader.stage(csv_rows(101, 100), 100);
    loader.begin("removed-cp3");  // two submitted jobs, one of them removed
    loader.stage(csv_rows(201, 100), 100);
    loader.submit();
    BOOST_TEST_REQUIRE(loader.job_ids().size() == 3u);
    // The loader cannot report a job it never saw end: the rest is read by another session.
    const auto rest =
        pg_ingest::wait_async_load_jobs(connection, {loader.job_ids()[1], loader.job_ids()[2]},
                                        std::chrono::steady_clock::now() + 120s, 200ms);
    for (const auto& job : rest) {
        BOOST_CHECK(job.state == JobState::finish);
    }
    BOOST_TEST(table_summary(connection, "al_removed") == "300/300/true");
}

BOOST_AUTO_TEST_CASE(restart_with_the_same_keys_never_loads_twice) {
    Connection connection = connect_async();
    reset_table(connection, "al_restart");
    // Three checkpoints of 1500 rows in 100-row chunks; with a 4000-byte budget each
    // checkpoint spans several jobs (cpN, cpN#2, ...).
    auto chunks_of = [](int checkpoint) {
        std::vector<std::string> chunks;
        for (int first = checkpoint * 1500 + 1; first <= checkpoint * 1500 + 1500; first += 100) {
            chunks.push_back(csv_rows(first, 100));
        }
        return chunks;
    };
    std::int64_t first_job = 0;
    {
        AsyncLoader loader(async_db(), loader_options("al_restart"));
        loader.begin("restart-cp0");
        for (const auto& chunk : chunks_of(0)) {
            loader.stage(chunk, 100);
        }
        loader.begin("restart-cp1");  // submits cp0's open job
        const auto cp1 = chunks_of(1);
        for (std::size_t i = 0; i < cp1.size() / 2 + 1; ++i) {
            loader.stage(cp1[i], 100);
        }
        first_job = loader.job_ids().at(0);
        // Destroyed mid-checkpoint: cp1's open job stays INIT with part of its rows staged.
    }
    AsyncLoader loader(async_db(), loader_options("al_restart"));
    int skipped = 0;
    for (int checkpoint = 0; checkpoint < 3; ++checkpoint) {
        loader.begin("restart-cp" + std::to_string(checkpoint));
        for (const auto& chunk : chunks_of(checkpoint)) {
            skipped += loader.stage(chunk, 100) ? 0 : 1;
        }
    }
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST(skipped >= 15);  // all of cp0 at least
    BOOST_TEST(loader.job_ids().at(0) == first_job);
    for (const auto& job : jobs) {
        BOOST_CHECK(job.state == JobState::finish);
    }
    BOOST_TEST(table_summary(connection, "al_restart") == "4500/4500/true");
    // An upsert hides a double load in the table; the jobs' counts do not: a chunk applied
    // twice would count its rows twice (inserted, then updated).
    BOOST_TEST(*connection
                    .execute("SELECT sum(rows_inserted + rows_updated) FROM "
                             "ingest.get_async_load_job() WHERE target = 'al_restart'::regclass")
                    .get(0, 0) == "4500");
}

BOOST_AUTO_TEST_CASE(restart_with_append_mode_loads_exactly_once) {
    // conflict_mode 'none' appends: loading any chunk twice would duplicate rows.
    Connection connection = connect_async();
    connection.execute(
        "DROP TABLE IF EXISTS al_append; CREATE TABLE al_append (id int, payload text)");
    AsyncLoaderOptions options = loader_options("al_append");
    options.job.conflict_mode = "none";
    {
        AsyncLoader loader(async_db(), options);
        loader.begin("append-cp0");
        for (int first = 1; first <= 700; first += 100) {
            loader.stage(csv_rows(first, 100), 100);
        }
    }
    AsyncLoader loader(async_db(), options);
    loader.begin("append-cp0");
    for (int first = 1; first <= 1000; first += 100) {
        loader.stage(csv_rows(first, 100), 100);
    }
    loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST(table_summary(connection, "al_append") == "1000/1000/true");
}

// A loader process (tests/client/tools/async_load_child.cpp) with its stdout on a pipe.
class LoaderProcess {
  public:
    explicit LoaderProcess(const std::vector<std::string>& args) {
        const std::string program =
            (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "async_load_child")
                .string();
        int fds[2];
        BOOST_REQUIRE(pipe(fds) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        std::vector<char*> argv{const_cast<char*>(program.c_str())};
        for (const auto& arg : args) {
            argv.push_back(const_cast<char*>(arg.c_str()));
        }
        argv.push_back(nullptr);
        const int rc =
            posix_spawn(&m_pid, program.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        close(fds[1]);
        BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << program);
        m_out = fdopen(fds[0], "r");
    }
    ~LoaderProcess() {
        if (m_pid > 0) {
            kill(m_pid, SIGKILL);
            waitpid(m_pid, nullptr, 0);
        }
        if (m_out != nullptr) {
            fclose(m_out);
        }
    }
    LoaderProcess(const LoaderProcess&) = delete;
    LoaderProcess& operator=(const LoaderProcess&) = delete;

    // The next line of output without its newline; false at end of output.
    bool next_line(std::string& line) {
        char buffer[256];
        if (fgets(buffer, sizeof buffer, m_out) == nullptr) {
            return false;
        }
        line = buffer;
        if (!line.empty() && line.back() == '\n') {
            line.pop_back();
        }
        return true;
    }
    // Waits for the process; returns its wait status.
    int wait_status() {
        int status = 0;
        waitpid(m_pid, &status, 0);
        m_pid = -1;
        return status;
    }
    void kill_now() { kill(m_pid, SIGKILL); }

  private:
    pid_t m_pid = -1;
    FILE* m_out = nullptr;
};

BOOST_AUTO_TEST_CASE(killed_loader_restarted_with_the_same_keys_loads_two_million_rows_once) {
    // Plain appends into a table without a key: a chunk loaded twice shows as extra rows.
    Connection connection = connect_async();
    connection.execute(
        "DROP TABLE IF EXISTS al_kill; CREATE TABLE al_kill (id int NOT NULL, payload text)");
    const std::string total = "2000000";
    // 20,000-row chunks, a unit per 200,000 rows, a new job every ~1 MB staged: ~36 jobs.
    const std::vector<std::string> args{test::dsn() + " dbname=pg_ingest_async_tests",
                                        "al_kill",
                                        total,
                                        "20000",
                                        "200000",
                                        "1000000"};
    std::string line;
    {
        LoaderProcess first(args);
        long long staged = 0;
        while (staged < 1000000 && first.next_line(line)) {
            BOOST_REQUIRE_MESSAGE(line.rfind("staged ", 0) == 0, "unexpected: " << line);
            staged = std::stoll(line.substr(7));
        }
        BOOST_REQUIRE_MESSAGE(staged >= 1000000, "the first loader stopped early at " << staged);
        first.kill_now();
        const int status = first.wait_status();
        BOOST_TEST(WIFSIGNALED(status));
    }
    const auto before = *connection
                             .execute(
                                 "SELECT count(*) FILTER (WHERE state = 'INIT') || '/' || "
                                 "count(*) FILTER (WHERE state <> 'INIT') FROM "
                                 "ingest.get_async_load_job() WHERE target = "
                                 "'al_kill'::regclass")
                             .get(0, 0);
    BOOST_TEST_MESSAGE("jobs after the kill (INIT/submitted): " << before);
    long long skipped = 0;
    long long last = 0;
    std::string done;
    {
        LoaderProcess second(args);
        while (second.next_line(line)) {
            if (line.rfind("skipped ", 0) == 0) {
                ++skipped;
                last = std::stoll(line.substr(8));
            } else if (line.rfind("staged ", 0) == 0) {
                last = std::stoll(line.substr(7));
            } else {
                done = line;
            }
        }
        const int status = second.wait_status();
        BOOST_TEST(WIFEXITED(status));
        BOOST_TEST(WEXITSTATUS(status) == 0);
    }
    BOOST_TEST(last == 2000000);
    BOOST_TEST(done.rfind("done ", 0) == 0u);
    BOOST_TEST(skipped >= 10);  // the submitted jobs of the first run were not staged again
    BOOST_TEST(table_summary(connection, "al_kill") == total + "/" + total + "/true");
    BOOST_TEST(*connection
                    .execute("SELECT count(*) = count(DISTINCT job_key) AND "
                             "bool_and(state = 'FINISH') FROM ingest.get_async_load_job() "
                             "WHERE target = 'al_kill'::regclass")
                    .get(0, 0) == "t");
    connection.execute("DROP TABLE al_kill");
}

BOOST_AUTO_TEST_CASE(bad_staged_data_is_a_typed_error_and_nothing_is_submitted) {
    Connection connection = connect_async();
    reset_table(connection, "al_bad");
    AsyncLoader loader(async_db(), loader_options("al_bad"));
    loader.begin("bad-cp");
    loader.stage("1,row 1\nnot a number,row x\n", 2);
    const auto error = test::error_of([&] { loader.wait(std::chrono::steady_clock::now() + 60s); });
    BOOST_TEST(error.sqlstate() == "22P02");
    BOOST_TEST(*connection
                    .execute("SELECT string_agg(state::text, ',') FROM ingest.get_async_load_job()"
                             " WHERE target = 'al_bad'::regclass")
                    .get(0, 0) == "INIT");
    // The loader stays failed.
    BOOST_CHECK_THROW(loader.stage("2,row 2\n", 1), pg_ingest::Error);
}

// A row the server refuses while staging is named by its number among the rows given to stage()
// (Error::row_number() and "staged row N"), whichever chunk and connection it is in, with line
// breaks inside CSV quotes (counted by the server as lines) and escaped in text before it.
BOOST_AUTO_TEST_CASE(a_row_refused_while_staging_is_named_by_its_number_among_the_rows_staged) {
    Connection connection = connect_async();
    struct Form {
        std::string name;
        std::string format;
        std::string eol;
        std::string good;  // a row, with "{}" for its id
    };
    const std::vector<Form> forms{
        {"csv, LF", "csv", "\n", "{},\"two\nlines\"\n"},
        {"csv, CRLF", "csv", "\r\n", "{},\"cr\r\nlf and lf\nand cr\rhere\"\r\n"},
        {"text", "text", "\n", "{}\tescaped\\\nline break\n"},
    };
    for (const Form& form : forms) {
        for (const std::size_t parallelism : {1u, 3u}) {
            BOOST_TEST_CONTEXT(form.name << ", parallelism " << parallelism) {
                reset_table(connection, "al_row");
                AsyncLoaderOptions options = loader_options("al_row");
                options.parallelism = parallelism;
                options.max_temp_file_size = 1u << 30;  // one job
                options.format.format = form.format;
                AsyncLoader loader(async_db(), options);
                loader.begin("");
                // Five chunks of 20 rows; row 67 (chunk 4, its 7th) is bad.
                int id = 0;
                std::optional<pg_ingest::Error> error;
                try {
                    for (int chunk = 0; chunk < 5; ++chunk) {
                        std::string data;
                        for (int r = 0; r < 20; ++r) {
                            ++id;
                            std::string row = form.good;
                            row.replace(row.find("{}"), 2, id == 67 ? "x67" : std::to_string(id));
                            data += row;
                        }
                        loader.stage(data, 20);
                    }
                    loader.wait(std::chrono::steady_clock::now() + 60s);
                } catch (const pg_ingest::Error& e) {
                    error = e;
                }
                BOOST_TEST_REQUIRE(error.has_value());
                BOOST_TEST(error->sqlstate() == "22P02");
                BOOST_TEST(error->row_number() == 67u);
                BOOST_TEST(std::string(error->what()).find("(staged row 67)") != std::string::npos,
                           error->what());
            }
        }
    }
}

// Without a key nothing can resume an abandoned job: the loader cancels it, so that its staging
// table does not stay behind.
BOOST_AUTO_TEST_CASE(a_keyless_job_left_open_is_cancelled_and_its_staging_dropped) {
    Connection connection = connect_async();
    reset_table(connection, "al_keyless");
    {
        AsyncLoader loader(async_db(), loader_options("al_keyless"));
        loader.begin("");
        loader.stage(csv_rows(1, 100), 100);
    }
    const auto jobs = connection.execute(
        "SELECT state::text, staging IS NULL FROM ingest.get_async_load_job() WHERE target = "
        "'al_keyless'::regclass");
    BOOST_TEST_REQUIRE(jobs.rows() == 1u);
    BOOST_TEST(*jobs.get(0, 0) == "CANCEL");
    BOOST_TEST(*jobs.get(0, 1) == "t");
    BOOST_TEST(*connection.execute("SELECT count(*) FROM al_keyless").get(0, 0) == "0");
}

// "cp#2" would be the key of unit "cp"'s second job: the two units would skip each other's data.
BOOST_AUTO_TEST_CASE(a_key_with_the_roll_over_mark_is_refused_and_the_loader_carries_on) {
    Connection connection = connect_async();
    reset_table(connection, "al_hash");
    AsyncLoader loader(async_db(), loader_options("al_hash"));
    const auto error = test::error_of([&] { loader.begin("cp#2"); });
    BOOST_TEST(error.sqlstate() == "22023");
    BOOST_TEST(std::string(error.what()).find("'cp#2' contains '#'") != std::string::npos,
               error.what());
    loader.begin("hash-cp2");
    loader.stage(csv_rows(1, 10), 10);
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_hash") == "10/10/true");
}

BOOST_AUTO_TEST_CASE(without_the_extension_a_clear_typed_error) {
    const ConnectionOptions plain = database("pg_ingest_no_extension", false);
    const auto error = test::error_of([&] { AsyncLoader loader(plain, loader_options("t")); });
    BOOST_TEST(error.sqlstate() == "42883");
    BOOST_TEST(std::string(error.what()).find("not installed") != std::string::npos);
    BOOST_TEST(error.hint().find("CREATE EXTENSION pg_ingest") != std::string::npos);
    Connection connection = Connection::connect(plain, 10s);
    BOOST_TEST(test::error_of([&] { pg_ingest::require_async_load(connection); }).sqlstate() ==
               "42883");
}

// Chunk c holds every key with payload "c<c>"; `keys` keys, `chunks` chunks.
std::string chunk_of_every_key(int chunk, int keys) {
    std::string data;
    for (int id = 1; id <= keys; ++id) {
        data += std::to_string(id) + ",c" + std::to_string(chunk) + "\n";
    }
    return data;
}

// Stages `chunks` chunks of every key (chunk_of_every_key) as unit `key` and waits for its one
// job to finish.
void stage_every_key_and_wait(AsyncLoader& loader, const std::string& key, int chunks, int keys) {
    loader.begin(key);
    for (int chunk = 1; chunk <= chunks; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, keys), keys);
    }
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
}

// The payloads of `table` and how many rows carry each: "c5:200" when all 200 rows say c5.
std::string payload_counts(Connection& connection, const std::string& table) {
    return *connection
                .execute(
                    "SELECT string_agg(payload || ':' || n, ',' ORDER BY payload) FROM "
                    "(SELECT payload, count(*) AS n FROM " +
                    table + " GROUP BY payload) p")
                .get(0, 0);
}

// Every key is in every chunk, and chunks alternate between 3 staging connections: the job must
// resolve each key by the order of stage() calls, as one connection would.
BOOST_AUTO_TEST_CASE(keys_repeated_across_chunks_resolve_in_stage_order_over_parallel_connections) {
    Connection connection = connect_async();
    for (const std::string mode : {"upsert", "ignore"}) {
        BOOST_TEST_CONTEXT("conflict mode " << mode) {
            reset_table(connection, "al_order");
            AsyncLoaderOptions options = loader_options("al_order");
            options.job.conflict_mode = mode;
            options.parallelism = 3;
            options.max_temp_file_size = 1u << 30;  // one job
            options.job.keep_staging = true;        // to see that it was staged in order
            AsyncLoader loader(async_db(), options);
            loader.begin("");
            const int keys = 300, chunks = 40;
            for (int chunk = 1; chunk <= chunks; ++chunk) {
                loader.stage(chunk_of_every_key(chunk, keys), keys);
            }
            const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
            BOOST_TEST_REQUIRE(jobs.size() == 1u);
            BOOST_CHECK(jobs[0].state == JobState::finish);
            BOOST_TEST(jobs[0].rows_staged == keys * chunks);
            // upsert: the last chunk wins; ignore: the first
            BOOST_TEST(payload_counts(connection, "al_order") ==
                       (mode == "upsert" ? "c40:300" : "c1:300"));
            // ordered staging, every chunk numbered
            BOOST_TEST_REQUIRE(!jobs[0].staging.empty());
            BOOST_TEST(*connection
                            .execute("SELECT count(DISTINCT _pg_ingest_chunk) || '/' || "
                                     "min(_pg_ingest_chunk) || '/' || max(_pg_ingest_chunk) "
                                     "FROM " +
                                     jobs[0].staging)
                            .get(0, 0) == "40/1/40");
            connection.execute("DROP TABLE " + jobs[0].staging);
        }
    }
}

// Rejects are numbered by stage order too: row n of the unit, whichever connection staged it.
BOOST_AUTO_TEST_CASE(rejects_are_numbered_in_stage_order_over_parallel_connections) {
    Connection connection = connect_async();
    reset_table(connection, "al_order_rejects");
    connection.execute("ALTER TABLE al_order_rejects ADD CHECK (payload <> 'bad')");
    AsyncLoaderOptions options = loader_options("al_order_rejects");
    options.job.conflict_mode = "none";
    options.job.exception_mode = "ignore";
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;
    AsyncLoader loader(async_db(), options);
    loader.begin("");
    // 10 chunks of 10 rows; the 5th row of every odd chunk is bad: rows 5, 25, 45, 65, 85
    for (int chunk = 0; chunk < 10; ++chunk) {
        std::string data;
        for (int i = 1; i <= 10; ++i) {
            const int row = chunk * 10 + i;
            data += std::to_string(row) + "," + (chunk % 2 == 0 && i == 5 ? "bad" : "ok") + "\n";
        }
        loader.stage(data, 10);
    }
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_rejected == 5);
    const auto rejects = connection.execute_params(
        "SELECT string_agg(row_number || '=' || raw_row, ' ' ORDER BY row_number) FROM "
        "ingest.async_load_reject WHERE job_id = $1::bigint",
        {std::to_string(jobs[0].id)});
    BOOST_TEST(*rejects.get(0, 0) == "5=(5,bad) 25=(25,bad) 45=(45,bad) 65=(65,bad) 85=(85,bad)");
}

// A job begun unordered (here by SQL; or by an earlier run with one connection, or on an older
// server) and resumed by a parallel loader is staged over one connection, so order still holds.
BOOST_AUTO_TEST_CASE(a_job_begun_unordered_is_resumed_over_one_connection_in_order) {
    Connection connection = connect_async();
    reset_table(connection, "al_order_resume");
    connection.execute(
        "SELECT ingest.begin_async_load('al_order_resume', job_key => 'order-resume-1')");
    AsyncLoaderOptions options = loader_options("al_order_resume");
    options.parallelism = 3;
    options.max_temp_file_size = 1u << 30;
    AsyncLoader loader(async_db(), options);
    stage_every_key_and_wait(loader, "order-resume-1", 30, 200);
    BOOST_TEST(payload_counts(connection, "al_order_resume") == "c30:200");
}

// A loaded column named like an order column rules ordered staging out: the job is begun
// unordered and staged over one connection.
BOOST_AUTO_TEST_CASE(a_target_with_an_order_column_name_is_staged_unordered_in_order) {
    Connection connection = connect_async();
    connection.execute(
        "DROP TABLE IF EXISTS al_order_clash; CREATE TABLE al_order_clash (id int "
        "PRIMARY KEY, payload text NOT NULL, _pg_ingest_chunk int)");
    AsyncLoaderOptions options = loader_options("al_order_clash");
    options.parallelism = 3;
    options.max_temp_file_size = 1u << 30;
    AsyncLoader loader(async_db(), options);
    loader.begin("");
    for (int chunk = 1; chunk <= 30; ++chunk) {
        std::string data;
        for (int id = 1; id <= 200; ++id) {
            data += std::to_string(id) + ",c" + std::to_string(chunk) + "," +
                    std::to_string(chunk) + "\n";
        }
        loader.stage(data, 200);
    }
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(payload_counts(connection, "al_order_clash") == "c30:200");
    BOOST_TEST(*connection.execute("SELECT min(_pg_ingest_chunk) FROM al_order_clash").get(0, 0) ==
               "30");
}

// pg_ingest 0.3.0 has no ordered staging: a parallel loader stages over one connection.
BOOST_AUTO_TEST_CASE(against_pg_ingest_0_3_0_a_parallel_loader_still_keeps_stage_order) {
    const ConnectionOptions old = database("pg_ingest_async_0_3_0", false);
    Connection connection = Connection::connect(old, 10s);
    connection.execute("DROP EXTENSION IF EXISTS pg_ingest CASCADE");
    connection.execute("CREATE EXTENSION pg_ingest VERSION '0.3.0'");
    reset_table(connection, "al_order_old");
    AsyncLoaderOptions options = loader_options("al_order_old");
    options.parallelism = 3;
    options.max_temp_file_size = 1u << 30;
    {
        AsyncLoader loader(old, options);
        stage_every_key_and_wait(loader, "", 30, 200);
    }
    BOOST_TEST(payload_counts(connection, "al_order_old") == "c30:200");
    connection.execute("DROP EXTENSION pg_ingest CASCADE");
}

// Which of a loader's backends terminate_loader_backends() ends.
enum class Backends {
    all,      // the control connection too
    staging,  // those inside a transaction: an ordered job's staging connections
};

// Terminates the backends with application_name `name`, except the `spared` ones; waits up to
// 10 s for one to exist. Returns the pids terminated.
std::vector<int> terminate_loader_backends(Connection& connection, const std::string& name,
                                           Backends which, const std::vector<int>& spared = {}) {
    std::string spared_list = "{";
    for (const int pid : spared) {
        spared_list += (spared_list.size() > 1 ? "," : "") + std::to_string(pid);
    }
    spared_list += "}";
    const std::string sql =
        "WITH victims AS MATERIALIZED (SELECT pid FROM pg_catalog.pg_stat_activity WHERE "
        "application_name = $1 AND pid <> pg_catalog.pg_backend_pid() AND NOT pid = ANY "
        "($2::int[])" +
        std::string(which == Backends::all ? "" : " AND xact_start IS NOT NULL") +
        ") SELECT pid FROM victims WHERE pg_catalog.pg_terminate_backend(pid)";
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (true) {
        const auto killed = connection.execute_params(sql, {name, spared_list});
        if (killed.rows() > 0 || std::chrono::steady_clock::now() > until) {
            std::vector<int> pids;
            for (std::size_t row = 0; row < killed.rows(); ++row) {
                pids.push_back(std::stoi(*killed.get(row, 0)));
            }
            return pids;
        }
        std::this_thread::sleep_for(20ms);
    }
}

// The pid that `sql` (a query of pg_stat_activity) returns once it returns exactly one row
// (waits up to 10 s; 0 if it never does).
int the_one_backend(Connection& connection, const std::string& sql,
                    const Connection::Parameters& params) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
        const auto found = connection.execute_params(sql, params);
        if (found.rows() == 1) {
            return std::stoi(*found.get(0, 0));
        }
        std::this_thread::sleep_for(20ms);
    }
    return 0;
}

// The pid of the one backend with application_name `name` that is inside a transaction, once
// there is exactly one (waits up to 10 s; 0 if there never is).
int the_staging_backend(Connection& connection, const std::string& name) {
    return the_one_backend(connection,
                           "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = "
                           "$1 AND xact_start IS NOT NULL",
                           {name});
}

// A connection holding a ROW EXCLUSIVE lock on the staging table of `table`'s newest INIT job,
// in its open transaction: a submit of that job waits for it until the transaction ends.
Connection lock_open_staging(Connection& connection, const std::string& table) {
    const std::string staging =
        *connection
             .execute_params(
                 "SELECT staging FROM ingest.get_async_load_job() WHERE state = "
                 "'INIT' AND target = $1::regclass ORDER BY id DESC LIMIT 1",
                 {table})
             .get(0, 0);
    Connection locker = connect_async();
    locker.execute("BEGIN");
    locker.execute("LOCK TABLE " + staging + " IN ROW EXCLUSIVE MODE");
    return locker;
}

// loader.submit() with a deadline `within` from now, on a thread; what it throws goes to
// `failure`.
std::thread submit_in_background(AsyncLoader& loader, std::chrono::seconds within,
                                 std::exception_ptr& failure) {
    return std::thread([&loader, &failure, within] {
        try {
            loader.submit(std::chrono::steady_clock::now() + within);
        } catch (...) {
            failure = std::current_exception();
        }
    });
}

// A backend with application_name `name` running a submit_async_load that waits for a lock,
// other than `spared`; 0 after 10 s.
int waiting_submit(Connection& connection, const std::string& name, int spared) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
        const auto found = connection.execute_params(
            "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = $1 AND "
            "wait_event_type = 'Lock' AND query LIKE '%submit_async_load%' AND pid <> $2::int",
            {name, std::to_string(spared)});
        if (found.rows() == 1) {
            return std::stoi(*found.get(0, 0));
        }
        std::this_thread::sleep_for(20ms);
    }
    return 0;
}

// Options whose connections carry application_name `name`, so that a test can find them.
ConnectionOptions named_async_db(const std::string& name) {
    ConnectionOptions options = async_db();
    options.set("application_name", name);
    return options;
}

// The logging hook (verbose): a line when each job is begun, submitted and seen ended, naming
// the job and its key; without verbose, nothing for a run without failures (a retry's warning
// is checked below).
BOOST_AUTO_TEST_CASE(the_logging_hook_tells_of_each_job_only_when_verbose) {
    Connection connection = connect_async();
    reset_table(connection, "al_log");
    for (const bool verbose : {true, false}) {
        BOOST_TEST_CONTEXT("verbose " << verbose) {
            AsyncLoaderOptions options = loader_options("al_log");
            options.max_temp_file_size = 1u << 30;  // one job
            options.verbose = verbose;
            std::vector<std::string> lines;
            options.on_log = [&](pg_ingest::LogLevel level, const std::string& line) {
                BOOST_CHECK(level == pg_ingest::LogLevel::info);
                lines.push_back(line);
            };
            AsyncLoader loader(async_db(), options);
            const std::string key = verbose ? "log-verbose" : "log-quiet";
            loader.begin(key);
            loader.stage(csv_rows(verbose ? 1 : 11, 10), 10);
            const auto jobs = loader.wait(std::chrono::steady_clock::now() + 60s);
            BOOST_TEST_REQUIRE(jobs.size() == 1u);
            BOOST_CHECK(jobs[0].state == JobState::finish);
            if (!verbose) {
                BOOST_TEST(lines.empty());
                continue;
            }
            BOOST_TEST_REQUIRE(lines.size() == 3u);
            const std::string job = "async load job " + std::to_string(jobs[0].id);
            BOOST_TEST(lines[0].rfind(job + " (key '" + key + "') begun into \"al_log\", staging ",
                                      0) == 0u,
                       lines[0]);
            BOOST_TEST(lines[1].rfind(job + " (key '" + key + "') submitted (", 0) == 0u, lines[1]);
            BOOST_TEST(lines[2] ==
                       job + " ended FINISH: 10 inserted, 0 updated, 0 skipped, 0 rejected");
        }
    }
    BOOST_TEST(table_summary(connection, "al_log") == "20/20/true");
}

// A staging connection terminated mid-job (pg_terminate_backend): the loader closes the staging
// connections, empties the job's staging table and stages the spooled chunks again with their
// numbers; the job loads every row once and keys still resolve in stage order.
BOOST_AUTO_TEST_CASE(a_staging_connection_terminated_mid_job_is_retried_and_loads_every_row_once) {
    Connection connection = connect_async();
    reset_table(connection, "al_retry");
    AsyncLoaderOptions options = loader_options("al_retry");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;  // one job
    options.retry_wait_time = 10ms;
    options.job.keep_staging = true;
    AsyncLoader loader(named_async_db("al_retry_stage"), options);
    loader.begin("");
    const int keys = 200, chunks = 20;
    for (int chunk = 1; chunk <= chunks; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, keys), keys);
        if (chunk == 10) {
            BOOST_TEST_REQUIRE(
                terminate_loader_backends(connection, "al_retry_stage", Backends::staging).size() >=
                1u);
        }
    }
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST(loader.retries() >= 1u);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_staged == keys * chunks);  // staged once: nothing twice, nothing lost
    BOOST_TEST(loader.rows_staged() == static_cast<std::uint64_t>(keys * chunks));
    BOOST_TEST(payload_counts(connection, "al_retry") == "c20:200");
    BOOST_TEST_REQUIRE(!jobs[0].staging.empty());
    BOOST_TEST(*connection
                    .execute("SELECT count(DISTINCT _pg_ingest_chunk) || '/' || count(*) FROM " +
                             jobs[0].staging)
                    .get(0, 0) == "20/4000");
    connection.execute("DROP TABLE " + jobs[0].staging);
}

// One staging connection lost after the other committed its part of the job (at the submit):
// the committed part is emptied before the job is staged again, so nothing is staged twice.
BOOST_AUTO_TEST_CASE(a_staging_connection_lost_after_another_committed_stages_nothing_twice) {
    Connection connection = connect_async();
    reset_table(connection, "al_retry_half");
    AsyncLoaderOptions options = loader_options("al_retry_half");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;
    options.retry_wait_time = 10ms;
    options.job.keep_staging = true;
    std::vector<std::string> warnings;  // not verbose: the retry's warning only
    options.on_log = [&](pg_ingest::LogLevel level, const std::string& line) {
        BOOST_CHECK(level == pg_ingest::LogLevel::warning);
        warnings.push_back(line);
    };
    AsyncLoader loader(named_async_db("al_retry_half"), options);
    loader.begin("");
    const int keys = 100, chunks = 10;
    loader.stage(chunk_of_every_key(1, keys), keys);  // the first staging connection's
    const int first = the_staging_backend(connection, "al_retry_half");
    BOOST_TEST_REQUIRE(first != 0);
    for (int chunk = 2; chunk <= chunks; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, keys), keys);
    }
    // the second staging connection: at the submit the first commits (it is drained first),
    // then the second fails
    BOOST_TEST_REQUIRE(
        terminate_loader_backends(connection, "al_retry_half", Backends::staging, {first}).size() ==
        1u);
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST(loader.retries() == 1u);
    BOOST_TEST_REQUIRE(warnings.size() == 1u);
    BOOST_TEST(warnings[0].rfind("transient error [", 0) == 0u, warnings[0]);
    BOOST_TEST(warnings[0].find("; retrying (1 of 3)") != std::string::npos, warnings[0]);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_staged == keys * chunks);
    BOOST_TEST(payload_counts(connection, "al_retry_half") == "c10:100");
    BOOST_TEST_REQUIRE(!jobs[0].staging.empty());
    BOOST_TEST(*connection
                    .execute("SELECT count(DISTINCT _pg_ingest_chunk) || '/' || count(*) FROM " +
                             jobs[0].staging)
                    .get(0, 0) == "10/1000");
    connection.execute("DROP TABLE " + jobs[0].staging);
}

// Every connection of the loader terminated, the control connection too, after the last chunk
// and before the submit; and an unordered append (one COPY stream per staging connection).
BOOST_AUTO_TEST_CASE(every_loader_connection_terminated_before_the_submit_is_retried) {
    Connection connection = connect_async();
    for (const std::string mode : {"upsert", "none"}) {
        BOOST_TEST_CONTEXT("conflict mode " << mode) {
            reset_table(connection, "al_retry_all");
            AsyncLoaderOptions options = loader_options("al_retry_all");
            options.job.conflict_mode = mode;
            options.parallelism = 2;
            options.max_temp_file_size = 1u << 30;
            options.retry_wait_time = 10ms;
            AsyncLoader loader(named_async_db("al_retry_all"), options);
            // a key of its own each run: a job already FINISH would be skipped, not staged
            loader.begin(
                "retry-all-" + mode + "-" +
                std::to_string(std::chrono::system_clock::now().time_since_epoch().count()));
            for (int chunk = 0; chunk < 10; ++chunk) {
                loader.stage(csv_rows(chunk * 500 + 1, 500), 500);
            }
            // Every staging connection has connected by the time its chunk is staged: the loader
            // holds small chunks without waiting for them.
            for (const auto until = std::chrono::steady_clock::now() + 10s;
                 std::chrono::steady_clock::now() < until &&
                 *connection
                         .execute_params("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE "
                                         "application_name = $1",
                                         {"al_retry_all"})
                         .get(0, 0) != "3";) {
                std::this_thread::sleep_for(20ms);
            }
            BOOST_TEST_REQUIRE(
                terminate_loader_backends(connection, "al_retry_all", Backends::all).size() >= 2u);
            const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
            BOOST_TEST(loader.retries() >= 1u);
            BOOST_TEST_REQUIRE(jobs.size() == 1u);
            BOOST_CHECK(jobs[0].state == JobState::finish);
            BOOST_TEST(jobs[0].rows_staged == 5000);
            BOOST_TEST(table_summary(connection, "al_retry_all") == "5000/5000/true");
        }
    }
}

// maxretrytimes = 0: no spool and no retry; the failure is a typed, retryable error, the job
// stays INIT and nothing is loaded.
BOOST_AUTO_TEST_CASE(without_retries_a_terminated_staging_connection_fails_the_loader) {
    Connection connection = connect_async();
    reset_table(connection, "al_retry_none");
    AsyncLoaderOptions options = loader_options("al_retry_none");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;
    options.max_retry_times = 0;
    AsyncLoader loader(named_async_db("al_retry_none"), options);
    loader.begin("retry-none");
    for (int chunk = 0; chunk < 4; ++chunk) {
        loader.stage(chunk_of_every_key(chunk + 1, 100), 100);
    }
    BOOST_TEST_REQUIRE(
        terminate_loader_backends(connection, "al_retry_none", Backends::staging).size() >= 1u);
    const pg_ingest::Error error =
        test::error_of([&] { loader.wait(std::chrono::steady_clock::now() + 60s); });
    BOOST_TEST(error.retryable());
    BOOST_TEST(loader.retries() == 0u);
    BOOST_TEST(test::error_of([&] { loader.submit(); }).what() == std::string(error.what()));
    BOOST_TEST(*connection
                    .execute("SELECT state FROM ingest.get_async_load_job() WHERE job_key = "
                             "'retry-none'")
                    .get(0, 0) == "INIT");
    BOOST_TEST(*connection.execute("SELECT count(*) FROM al_retry_none").get(0, 0) == "0");
}

// maxretrytimes = 1 and two failures: the second fails the loader; the job stays INIT, empty.
BOOST_AUTO_TEST_CASE(a_failure_past_maxretrytimes_fails_the_loader_and_loads_nothing) {
    Connection connection = connect_async();
    reset_table(connection, "al_retry_out");
    AsyncLoaderOptions options = loader_options("al_retry_out");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;
    options.max_retry_times = 1;
    options.retry_wait_time = 10ms;
    AsyncLoader loader(named_async_db("al_retry_out"), options);
    const std::string key =
        "retry-out-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
    loader.begin(key);
    int chunk = 1;
    for (; chunk <= 4; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, 100), 100);
    }
    const auto first = terminate_loader_backends(connection, "al_retry_out", Backends::staging);
    BOOST_TEST_REQUIRE(!first.empty());
    // stage on until the loader has met the failure and staged the job again
    for (; loader.retries() == 0 && chunk <= 200; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, 100), 100);
    }
    BOOST_TEST_REQUIRE(loader.retries() == 1u);
    BOOST_TEST_REQUIRE(
        !terminate_loader_backends(connection, "al_retry_out", Backends::staging, first).empty());
    const pg_ingest::Error error =
        test::error_of([&] { loader.wait(std::chrono::steady_clock::now() + 60s); });
    BOOST_TEST(error.retryable());
    BOOST_TEST(loader.retries() == 1u);
    BOOST_TEST(*connection
                    .execute_params("SELECT state FROM ingest.get_async_load_job() WHERE "
                                    "job_key = $1",
                                    {key})
                    .get(0, 0) == "INIT");
    BOOST_TEST(*connection.execute("SELECT count(*) FROM al_retry_out").get(0, 0) == "0");
}

// The control connection lost while its submit waits for a lock on the staging table: the
// loader reads the job's state (still INIT: the submit was rolled back), does not stage again
// (every staging connection had committed) and submits once more.
BOOST_AUTO_TEST_CASE(a_submit_lost_before_it_landed_is_sent_again_without_restaging) {
    Connection connection = connect_async();
    reset_table(connection, "al_retry_submit");
    AsyncLoaderOptions options = loader_options("al_retry_submit");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;
    options.retry_wait_time = 10ms;
    AsyncLoader loader(named_async_db("al_retry_submit"), options);
    loader.begin("");
    for (int chunk = 1; chunk <= 6; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, 100), 100);
    }
    Connection locker = lock_open_staging(connection, "al_retry_submit");
    std::exception_ptr failure;
    std::thread submitter = submit_in_background(loader, 120s, failure);
    const int first = waiting_submit(connection, "al_retry_submit", 0);
    const std::string killed_at = *connection.execute("SELECT clock_timestamp()").get(0, 0);
    if (first != 0) {
        connection.execute("SELECT pg_catalog.pg_terminate_backend(" + std::to_string(first) + ")");
    }
    const int second = first != 0 ? waiting_submit(connection, "al_retry_submit", first) : 0;
    locker.execute("COMMIT");
    submitter.join();
    BOOST_TEST_REQUIRE(first != 0);
    BOOST_TEST(second != 0);
    BOOST_TEST_REQUIRE(!failure);
    BOOST_TEST(loader.retries() == 1u);
    // connected since: the new control connection only, no staging connection
    BOOST_TEST(*connection
                    .execute_params("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE "
                                    "application_name = 'al_retry_submit' AND backend_start > "
                                    "$1::timestamptz",
                                    {killed_at})
                    .get(0, 0) == "1");
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_staged == 600);
    BOOST_TEST(payload_counts(connection, "al_retry_submit") == "c6:100");
}

// A submit lost while it waits for a lock, and the retry's back-off outlasting the deadline:
// the submit is in doubt, so stage() refuses (55000, the loader usable) rather than stage into
// a job that may be submitted; the next submit() ends the old backend, reads INIT and submits.
BOOST_AUTO_TEST_CASE(while_a_lost_submit_is_in_doubt_stage_refuses_and_submit_resolves_it) {
    Connection connection = connect_async();
    reset_table(connection, "al_retry_doubt");
    AsyncLoaderOptions options = loader_options("al_retry_doubt");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;
    options.retry_wait_time = 60s;  // outlasts the deadline below
    AsyncLoader loader(named_async_db("al_retry_doubt"), options);
    loader.begin("");
    for (int chunk = 1; chunk <= 4; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, 100), 100);
    }
    Connection locker = lock_open_staging(connection, "al_retry_doubt");
    std::exception_ptr failure;
    std::thread submitter = submit_in_background(loader, 5s, failure);
    const int first = waiting_submit(connection, "al_retry_doubt", 0);
    if (first != 0) {
        connection.execute("SELECT pg_catalog.pg_terminate_backend(" + std::to_string(first) + ")");
    }
    submitter.join();
    locker.execute("COMMIT");
    BOOST_TEST_REQUIRE(first != 0);
    BOOST_TEST_REQUIRE(static_cast<bool>(failure));
    try {
        std::rethrow_exception(failure);
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "57014");
    }
    const pg_ingest::Error refused =
        test::error_of([&] { loader.stage(chunk_of_every_key(5, 100), 100); });
    BOOST_TEST(refused.sqlstate() == "55000");
    loader.submit(std::chrono::steady_clock::now() + 60s);
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST(loader.retries() == 1u);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_staged == 400);
    BOOST_TEST(payload_counts(connection, "al_retry_doubt") == "c4:100");
}

// Runs `body` on another thread, waits at most `limit` for it and returns the Error it threw,
// if any. A call that hangs (the bound under test broken) fails the test instead of hanging
// it: the proxy is closed, which ends every connection through it, so the call returns.
std::optional<pg_ingest::Error> failure_within(std::chrono::seconds limit,
                                               std::optional<test::FaultProxy>& proxy,
                                               const std::function<void()>& body) {
    auto done = std::async(std::launch::async, [&]() -> std::optional<pg_ingest::Error> {
        try {
            body();
        } catch (const pg_ingest::Error& error) {
            return error;
        }
        return std::nullopt;
    });
    if (done.wait_for(limit) != std::future_status::ready) {
        proxy.reset();
        done.wait();
        BOOST_FAIL("the call did not end within " << limit.count() << " s");
    }
    return done.get();
}

ConnectionOptions async_db_through(const test::FaultProxy& proxy) {
    async_db();  // created with the extension
    ConnectionOptions options = proxy.options();
    options.set("dbname", "pg_ingest_async_tests");
    return options;
}

// The submit reaches the server and commits, but its answer never comes back (a silent network):
// the call ends at its deadline plus the loader's grace, the loader stays usable, and the next
// call finds the job submitted rather than submitting it again.
BOOST_AUTO_TEST_CASE(a_submit_answered_into_silence_is_found_landed_and_not_sent_again) {
    Connection connection = connect_async();
    reset_table(connection, "al_silent_submit");
    std::optional<test::FaultProxy> proxy(std::in_place);
    AsyncLoaderOptions options = loader_options("al_silent_submit");
    options.max_temp_file_size = 1u << 30;  // one job
    AsyncLoader loader(async_db_through(*proxy), options);
    loader.begin("silent-submit");
    for (int chunk = 0; chunk < 4; ++chunk) {
        loader.stage(csv_rows(chunk * 500 + 1, 500), 500);
    }
    proxy->count("ingest.submit_async_load(");
    proxy->arm_silence("ingest.submit_async_load(");
    const auto start = std::chrono::steady_clock::now();
    // Time enough for the staging connections to commit and the submit to land (our
    // statement_timeout must not cancel it first); the loader never hears that it did.
    const auto error = failure_within(30s, proxy, [&] { loader.submit(start + 5s); });
    const auto took = test::elapsed_ms(start);
    BOOST_TEST_REQUIRE(error.has_value());
    BOOST_TEST(error->sqlstate() == "57014");
    BOOST_TEST(std::string(error->what()).find("did not answer") != std::string::npos);
    BOOST_TEST(took >= 7000);  // the deadline, then the grace for statement_timeout's answer
    BOOST_TEST(took < 20000);
    BOOST_TEST_REQUIRE(proxy->cuts() == 1);
    const auto found =
        pg_ingest::list_async_load_jobs(connection, QualifiedName::parse("al_silent_submit"));
    BOOST_TEST_REQUIRE(found.size() == 1u);
    BOOST_CHECK(found[0].state != JobState::init);  // it landed though the loader never heard
    std::vector<AsyncJob> jobs;
    BOOST_TEST_REQUIRE(!failure_within(
        120s, proxy, [&] { jobs = loader.wait(std::chrono::steady_clock::now() + 100s); }));
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_staged == 2000);
    BOOST_TEST(table_summary(connection, "al_silent_submit") == "2000/2000/true");
    BOOST_TEST(proxy->counted() == 1);  // found submitted: not sent again
    BOOST_TEST(loader.retries() == 0u);
}

// The wait's read of the jobs gets no answer: wait() ends at its deadline plus the grace with a
// passed deadline (not hanging until TCP gives up), and the next wait() carries on.
BOOST_AUTO_TEST_CASE(a_wait_that_hears_nothing_ends_at_its_deadline_and_the_next_carries_on) {
    Connection connection = connect_async();
    reset_table(connection, "al_silent_wait");
    std::optional<test::FaultProxy> proxy(std::in_place);
    AsyncLoaderOptions options = loader_options("al_silent_wait");
    options.max_temp_file_size = 1u << 30;
    AsyncLoader loader(async_db_through(*proxy), options);
    loader.begin("silent-wait");
    loader.stage(csv_rows(1, 300), 300);
    loader.submit();
    proxy->arm_silence("get_async_load_job() WHERE id = ANY");
    const auto start = std::chrono::steady_clock::now();
    const auto error = failure_within(30s, proxy, [&] { loader.wait(start + 1s); });
    BOOST_TEST_REQUIRE(error.has_value());
    BOOST_TEST(error->sqlstate() == "57014");
    BOOST_TEST(std::string(error->what()).find("did not answer") != std::string::npos);
    BOOST_TEST_REQUIRE(proxy->cuts() == 1);
    std::vector<AsyncJob> jobs;
    BOOST_TEST_REQUIRE(!failure_within(
        120s, proxy, [&] { jobs = loader.wait(std::chrono::steady_clock::now() + 100s); }));
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_silent_wait") == "300/300/true");
}

// One staging connection goes silent in the middle of its transaction (its backend keeps the
// staging table locked and never hears of the client again) and the other is terminated: the
// retry breaks off the silent one at once instead of waiting out its 5-minute bound, ends its
// backend (named by pid and start), and stages the job again; every row loads once.
void silent_staging_case(int silent_chunk) {
    Connection connection = connect_async();
    reset_table(connection, "al_silent_stage");
    std::optional<test::FaultProxy> proxy(std::in_place);
    AsyncLoaderOptions options = loader_options("al_silent_stage");
    options.parallelism = 2;
    options.max_temp_file_size = 1u << 30;  // one job
    options.retry_wait_time = 10ms;
    ConnectionOptions through = async_db_through(*proxy);
    through.set("application_name", "al_silent_stage");
    AsyncLoader loader(through, options);
    loader.begin("silent-stage-" + std::to_string(silent_chunk));
    const std::string chunk_text = "'" + std::to_string(silent_chunk) + "'";
    proxy->arm_silence("'ingest.stage_chunk', " + chunk_text);
    const int keys = 100, chunks = 8;
    for (int chunk = 1; chunk <= chunks; ++chunk) {
        loader.stage(chunk_of_every_key(chunk, keys), keys);
    }
    const int silent =
        the_one_backend(connection,
                        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = "
                        "'al_silent_stage' AND state = 'idle in transaction' AND query LIKE "
                        "'%stage_chunk'', ' || $1 || '%'",
                        {chunk_text});
    BOOST_TEST_REQUIRE(proxy->cuts() == 1);
    BOOST_TEST_REQUIRE(silent != 0);
    // The other connection is terminated once idle after its last chunk: its failure then
    // shows only when it is given the job's finish, while the silent one's queue is full (the
    // hard case: the finish for the silent one cannot be handed over, and it may come first).
    std::this_thread::sleep_for(500ms);
    const int other = the_one_backend(
        connection,
        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = "
        "'al_silent_stage' AND state = 'idle in transaction' AND query LIKE 'COPY %' AND pid "
        "<> $1::int",
        {std::to_string(silent)});
    BOOST_TEST_REQUIRE(other != 0);
    BOOST_TEST_REQUIRE(terminate_loader_backends(connection, "al_silent_stage", Backends::staging,
                                                 {silent}) == std::vector<int>{other});
    const auto start = std::chrono::steady_clock::now();
    std::vector<AsyncJob> jobs;
    BOOST_TEST_REQUIRE(!failure_within(
        60s, proxy, [&] { jobs = loader.wait(std::chrono::steady_clock::now() + 50s); }));
    BOOST_TEST(test::elapsed_ms(start) < 30000);
    BOOST_TEST(loader.retries() == 1u);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(jobs[0].rows_staged == keys * chunks);  // staged once: nothing twice, nothing lost
    BOOST_TEST(payload_counts(connection, "al_silent_stage") == "c8:100");
    BOOST_TEST(*connection
                    .execute_params("SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = "
                                    "$1::int",
                                    {std::to_string(silent)})
                    .get(0, 0) == "0");
}

BOOST_AUTO_TEST_CASE(a_silent_staging_connection_is_broken_off_and_its_backend_ended) {
    // Round robin: chunk 3 is the first staging connection's second chunk, chunk 4 the
    // second's; either is inside its transaction (one chunk copied) when it goes silent.
    for (const int silent_chunk : {3, 4}) {
        BOOST_TEST_CONTEXT("silent at chunk " << silent_chunk) {
            silent_staging_case(silent_chunk);
        }
    }
}

// stage() with a staging connection that cannot take its chunk (its COPY waits for a lock, and
// it holds two more, of 4.5 MB each: small ones it holds up to 8 MB) ends at its deadline with
// 57014 before taking the chunk, with or without the retry spool; staged again, every row loads
// once (an append into a keyed table: a chunk staged twice would fail the job with 23505).
BOOST_AUTO_TEST_CASE(
    stage_behind_a_stalled_staging_connection_ends_at_its_deadline_and_keeps_the_chunk) {
    using Clock = std::chrono::steady_clock;
    for (const int max_retry_times : {3, 0}) {
        BOOST_TEST_CONTEXT("max_retry_times " << max_retry_times) {
            Connection connection = connect_async();
            reset_table(connection, "al_stalled");
            AsyncLoaderOptions options = loader_options("al_stalled");
            options.job.conflict_mode = "none";
            options.parallelism = 1;
            options.max_temp_file_size = 1u << 30;  // one job
            options.max_retry_times = max_retry_times;
            AsyncLoader loader(async_db(), options);
            const std::string key = "stalled-" + std::to_string(max_retry_times);
            loader.begin(key);
            const auto staging =
                connection
                    .execute_params(
                        "SELECT staging::text FROM ingest.get_async_load_job() WHERE "
                        "job_key = $1 AND target = 'al_stalled'::regclass",
                        {key})
                    .get(0, 0);
            BOOST_TEST_REQUIRE(staging.has_value());
            Connection blocker = connect_async();
            blocker.execute("BEGIN; LOCK TABLE " + *staging + " IN ACCESS EXCLUSIVE MODE");
            bool locked = true;
            int timeouts = 0;
            int first = 1;
            while (first <= 1000) {
                const auto start = Clock::now();
                auto call =
                    std::async(std::launch::async, [&]() -> std::optional<pg_ingest::Error> {
                        try {
                            loader.stage(csv_rows(first, 100, 45000), 100, start + 500ms);
                        } catch (const pg_ingest::Error& error) {
                            return error;
                        }
                        return std::nullopt;
                    });
                if (call.wait_for(10s) != std::future_status::ready) {
                    blocker.execute("COMMIT");  // lets the stalled call end
                    call.wait();
                    BOOST_FAIL("stage() did not end at its deadline");
                }
                const auto error = call.get();
                if (!error) {
                    first += 100;
                    continue;
                }
                BOOST_TEST_REQUIRE(error->sqlstate() == "57014", error->what());
                BOOST_TEST(test::elapsed_ms(start) < 500 + 1500);
                if (++timeouts == 2 && locked) {
                    blocker.execute("COMMIT");
                    locked = false;
                }
            }
            BOOST_TEST(timeouts == 2);
            const auto jobs = loader.wait(Clock::now() + 120s);
            BOOST_TEST_REQUIRE(jobs.size() == 1u);
            BOOST_CHECK(jobs[0].state == JobState::finish);
            BOOST_TEST(loader.rows_staged() == 1000u);
            BOOST_TEST(*connection
                            .execute("SELECT count(*) || '/' || count(DISTINCT id) || '/' || "
                                     "bool_and(payload LIKE 'row ' || id || 'x%') FROM al_stalled")
                            .get(0, 0) == "1000/1000/true");
        }
    }
}

// stage() before begin() is a usage error (55000) that leaves the loader usable.
BOOST_AUTO_TEST_CASE(stage_before_begin_is_a_usage_error_and_the_loader_carries_on) {
    Connection connection = connect_async();
    reset_table(connection, "al_misuse");
    AsyncLoader loader(async_db(), loader_options("al_misuse"));
    const auto error = test::error_of([&] { loader.stage(csv_rows(1, 100), 100); });
    BOOST_TEST(error.sqlstate() == "55000");
    BOOST_TEST(!error.retryable());
    loader.begin("misuse-cp1");
    BOOST_TEST(loader.stage(csv_rows(1, 100), 100));
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 120s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_misuse") == "100/100/true");
}

// The async tests' database through `proxy`, with an application name to find its backends.
ConnectionOptions through(const test::FaultProxy& proxy, const std::string& application_name) {
    async_db();  // created with the extension
    ConnectionOptions options = proxy.options();
    options.set("dbname", "pg_ingest_async_tests");
    options.set("application_name", application_name);
    return options;
}

// The control connection is lost and the server no longer answers new connections: the call
// that connects it again ends at its deadline (plus the loader's 2 s grace) with 57014, not at
// connect_timeout, and the loader carries on once the server answers again.
BOOST_AUTO_TEST_CASE(reconnecting_the_control_connection_ends_at_the_calls_deadline) {
    Connection connection = connect_async();
    reset_table(connection, "al_reconnect");
    AsyncLoaderOptions options = loader_options("al_reconnect");
    options.max_temp_file_size = 1u << 30;
    options.connect_timeout = 60s;
    std::optional<test::FaultProxy> proxy(std::in_place);
    AsyncLoader loader(through(*proxy, "al_reconnect"), options);
    loader.begin("reconnect-cp1");
    loader.stage(csv_rows(1, 300), 300);
    loader.submit();
    BOOST_TEST_REQUIRE(
        !terminate_loader_backends(connection, "al_reconnect", Backends::all).empty());
    proxy->hold(true);
    const auto start = std::chrono::steady_clock::now();
    auto call = std::async(std::launch::async, [&]() -> std::optional<pg_ingest::Error> {
        try {
            loader.wait(start + 1s);
        } catch (const pg_ingest::Error& error) {
            return error;
        }
        return std::nullopt;
    });
    if (call.wait_for(20s) != std::future_status::ready) {
        proxy.reset();  // ends the connect
        call.wait();
        BOOST_FAIL("wait() did not end at its deadline while connecting");
    }
    const auto error = call.get();
    BOOST_TEST_REQUIRE(error.has_value());
    BOOST_TEST(error->sqlstate() == "57014", error->what());
    BOOST_TEST(test::elapsed_ms(start) < 1000 + 2000 + 1500);
    proxy->hold(false);
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 60s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_reconnect") == "300/300/true");
}

// A staging connection's connect that hangs (the server answers no new connection) is given
// up at the deadline of the stage() that started it (plus the grace), not at connect_timeout:
// once the server answers again, the retry stages the job on a new connection.
BOOST_AUTO_TEST_CASE(a_staging_connect_that_hangs_is_given_up_at_the_calls_deadline) {
    Connection connection = connect_async();
    reset_table(connection, "al_stage_connect");
    AsyncLoaderOptions options = loader_options("al_stage_connect");
    options.parallelism = 1;
    options.max_temp_file_size = 1u << 30;
    options.connect_timeout = 60s;
    options.retry_wait_time = 10ms;
    std::optional<test::FaultProxy> proxy(std::in_place);
    AsyncLoader loader(through(*proxy, "al_stage_connect"), options);
    loader.begin("stage-connect-cp1");
    proxy->hold(true);
    const auto start = std::chrono::steady_clock::now();
    loader.stage(csv_rows(1, 300), 300, start + 1s);  // taken; its connection opens meanwhile
    BOOST_TEST(test::elapsed_ms(start) < 1000);
    std::this_thread::sleep_until(start + 1s + 2s + 1s);  // the connect was given up by now
    proxy->hold(false);
    auto call = std::async(std::launch::async, [&]() -> std::optional<pg_ingest::Error> {
        try {
            loader.submit(std::chrono::steady_clock::now() + 20s);
        } catch (const pg_ingest::Error& error) {
            return error;
        }
        return std::nullopt;
    });
    if (call.wait_for(40s) != std::future_status::ready) {
        proxy.reset();
        call.wait();
        BOOST_FAIL("submit() did not end");
    }
    const auto error = call.get();
    BOOST_TEST_REQUIRE(!error.has_value(), (error ? error->what() : ""));
    BOOST_TEST(loader.retries() == 1u);
    const auto jobs = loader.wait(std::chrono::steady_clock::now() + 60s);
    BOOST_TEST_REQUIRE(jobs.size() == 1u);
    BOOST_CHECK(jobs[0].state == JobState::finish);
    BOOST_TEST(table_summary(connection, "al_stage_connect") == "300/300/true");
}

// Negative retry settings are refused when the loader is built.
BOOST_AUTO_TEST_CASE(negative_retry_settings_are_refused) {
    AsyncLoaderOptions options = loader_options("al_retry_none");
    options.max_retry_times = -1;
    BOOST_TEST(test::error_of([&] { AsyncLoader loader(async_db(), options); }).sqlstate() ==
               "22023");
}

BOOST_AUTO_TEST_SUITE_END()
