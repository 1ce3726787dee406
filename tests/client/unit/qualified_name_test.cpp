// QualifiedName parsing/quoting and the async job state vocabulary (no server needed).
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/async_job.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/qualified_name.hpp>

using pg_ingest::JobState;
using pg_ingest::QualifiedName;

BOOST_AUTO_TEST_SUITE(qualified_name)

BOOST_AUTO_TEST_CASE(unquoted_parts_fold_to_lower_case_and_quoted_parts_are_literal) {
    const auto plain = QualifiedName::parse("Orders");
    BOOST_TEST(plain.schema == "");
    BOOST_TEST(plain.name == "orders");
    BOOST_TEST(plain.quoted() == "\"orders\"");

    const auto qualified = QualifiedName::parse("Sales.\"Order Lines\"");
    BOOST_TEST(qualified.schema == "sales");
    BOOST_TEST(qualified.name == "Order Lines");
    BOOST_TEST(qualified.quoted() == "\"sales\".\"Order Lines\"");

    const auto dotted = QualifiedName::parse("\"a.b\".\"say \"\"hi\"\"\"");
    BOOST_TEST(dotted.schema == "a.b");
    BOOST_TEST(dotted.name == "say \"hi\"");
    BOOST_TEST(dotted.quoted() == "\"a.b\".\"say \"\"hi\"\"\"");
}

BOOST_AUTO_TEST_CASE(case_sensitive_keeps_unquoted_case) {
    const auto name = QualifiedName::parse("Sales.Orders", true);
    BOOST_TEST(name.schema == "Sales");
    BOOST_TEST(name.name == "Orders");
}

BOOST_AUTO_TEST_CASE(malformed_names_are_errors) {
    for (const std::string& bad : std::vector<std::string>{
             "", ".t", "s.", "a.b.c", "\"open", "x\"y\"", "\"a\"b", std::string("a\0b", 3)}) {
        BOOST_TEST_CONTEXT("input: " << bad) {
            BOOST_CHECK_THROW(QualifiedName::parse(bad), pg_ingest::Error);
        }
    }
}

BOOST_AUTO_TEST_CASE(quote_identifier_doubles_quotes_and_rejects_empty) {
    BOOST_TEST(pg_ingest::quote_identifier("select") == "\"select\"");
    BOOST_TEST(pg_ingest::quote_identifier("a\"b") == "\"a\"\"b\"");
    BOOST_CHECK_THROW(pg_ingest::quote_identifier(""), pg_ingest::Error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(job_state)

BOOST_AUTO_TEST_CASE(states_round_trip_and_only_three_are_ended) {
    for (const JobState state : {JobState::init, JobState::ready, JobState::loading,
                                 JobState::finish, JobState::fail, JobState::cancel}) {
        BOOST_CHECK(pg_ingest::parse_job_state(pg_ingest::to_string(state)) == state);
    }
    BOOST_CHECK(pg_ingest::parse_job_state("loading") == JobState::loading);
    BOOST_TEST(pg_ingest::is_ended(JobState::finish));
    BOOST_TEST(pg_ingest::is_ended(JobState::fail));
    BOOST_TEST(pg_ingest::is_ended(JobState::cancel));
    BOOST_TEST(!pg_ingest::is_ended(JobState::init));
    BOOST_TEST(!pg_ingest::is_ended(JobState::ready));
    BOOST_TEST(!pg_ingest::is_ended(JobState::loading));
    BOOST_CHECK_THROW(pg_ingest::parse_job_state("DONE"), pg_ingest::Error);
}

BOOST_AUTO_TEST_SUITE_END()
