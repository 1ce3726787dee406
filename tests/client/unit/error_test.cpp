#include <stdexcept>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>

using pg_ingest::Error;
using pg_ingest::is_transient_sqlstate;

BOOST_AUTO_TEST_SUITE(sqlstate_classification)

BOOST_AUTO_TEST_CASE(connection_exceptions_in_class_08_are_transient) {
    for (const char* code : {"08000", "08001", "08003", "08004", "08006"}) {
        BOOST_TEST_CONTEXT("sqlstate " << code) {
            BOOST_TEST(is_transient_sqlstate(code));
        }
    }
}

BOOST_AUTO_TEST_CASE(a_protocol_violation_is_not_transient_the_same_bytes_fail_again) {
    BOOST_TEST(!is_transient_sqlstate("08P01"));
    BOOST_TEST(
        !pg_ingest::Error("insufficient data left in message", "08P01", "", "", true).retryable());
}

BOOST_AUTO_TEST_CASE(transaction_resolution_unknown_is_not_transient_it_may_have_committed) {
    BOOST_TEST(!is_transient_sqlstate("08007"));
    BOOST_TEST(!pg_ingest::Error("outcome unknown", "08007", "", "", false).retryable());
}

BOOST_AUTO_TEST_CASE(serialization_deadlock_lock_resource_and_shutdown_codes_are_transient) {
    const std::vector<std::string> codes = {
        "40001",  // serialization_failure
        "40P01",  // deadlock_detected
        "55P03",  // lock_not_available
        "53000",  // insufficient_resources
        "53200",  // out_of_memory
        "53300",  // too_many_connections
        "57P01",  // admin_shutdown
        "57P02",  // crash_shutdown
        "57P03",  // cannot_connect_now
        "57P05",  // idle_session_timeout
        "25P03",  // idle_in_transaction_session_timeout
    };
    for (const auto& code : codes) {
        BOOST_TEST_CONTEXT("sqlstate " << code) {
            BOOST_TEST(is_transient_sqlstate(code));
        }
    }
}

BOOST_AUTO_TEST_CASE(disk_full_and_query_canceled_are_not_retried_blindly) {
    BOOST_TEST(!is_transient_sqlstate("53100"));  // disk_full
    BOOST_TEST(!is_transient_sqlstate("57014"));  // query_canceled / statement_timeout
}

BOOST_AUTO_TEST_CASE(data_integrity_syntax_access_and_internal_errors_are_permanent) {
    const std::vector<std::string> codes = {
        "22012", "22P02", "22001", "22003", "22007", "22021",  // data exceptions
        "23505", "23503", "23502", "23514", "23P01",           // integrity constraints
        "42601", "42P01", "42703", "42501", "42883",           // syntax / access
        "28P01", "28000", "3D000", "3F000",                    // auth, catalog, schema
        "25P02", "40002", "40003", "0A000", "P0001",           // txn state, misc
        "53400", "57P04", "58030", "XX000", "XX001", "XX002",  // config, dropped db, system
    };
    for (const auto& code : codes) {
        BOOST_TEST_CONTEXT("sqlstate " << code) {
            BOOST_TEST(!is_transient_sqlstate(code));
        }
    }
}

BOOST_AUTO_TEST_CASE(malformed_or_empty_sqlstates_are_not_transient) {
    for (const char* code : {"", "0800", "080010", "40p01", " 4000", "08 01", "4000\x01"}) {
        BOOST_TEST_CONTEXT("sqlstate '" << code << "'") {
            BOOST_TEST(!is_transient_sqlstate(code));
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(error_type)

BOOST_AUTO_TEST_CASE(server_error_exposes_every_field) {
    const Error error("boom", "22012", "the detail", "the hint", true);
    BOOST_TEST(std::string(error.what()) == "boom");
    BOOST_TEST(error.sqlstate() == "22012");
    BOOST_TEST(error.detail() == "the detail");
    BOOST_TEST(error.hint() == "the hint");
    BOOST_TEST(!error.retryable());
    BOOST_TEST(error.connection_usable());
}

BOOST_AUTO_TEST_CASE(retryable_follows_the_sqlstate_classification) {
    BOOST_TEST(Error("deadlock", "40P01", "", "", true).retryable());
    BOOST_TEST(Error("lost", "08006", "", "", false).retryable());
    BOOST_TEST(!Error("disk full", "53100", "", "", true).retryable());
}

BOOST_AUTO_TEST_CASE(connection_usable_is_reported_as_given) {
    const Error lost("server closed the connection", "08006", "", "", false);
    BOOST_TEST(!lost.connection_usable());
}

BOOST_AUTO_TEST_CASE(library_error_has_no_sqlstate_and_is_not_retryable) {
    const Error error("bad input");
    BOOST_TEST(std::string(error.what()) == "bad input");
    BOOST_TEST(error.sqlstate().empty());
    BOOST_TEST(error.detail().empty());
    BOOST_TEST(error.hint().empty());
    BOOST_TEST(!error.retryable());
    BOOST_TEST(error.connection_usable());
}

BOOST_AUTO_TEST_CASE(copies_keep_all_fields_and_it_is_caught_as_runtime_error) {
    try {
        const Error original("x", "40001", "d", "h", false);
        const Error copy = original;  // NOLINT(performance-unnecessary-copy-initialization)
        throw copy;
    } catch (const std::runtime_error& caught) {
        const auto* error = dynamic_cast<const Error*>(&caught);
        BOOST_TEST_REQUIRE(error != nullptr);
        BOOST_TEST(error->sqlstate() == "40001");
        BOOST_TEST(error->detail() == "d");
        BOOST_TEST(error->hint() == "h");
        BOOST_TEST(error->retryable());
        BOOST_TEST(!error->connection_usable());
    }
}

BOOST_AUTO_TEST_SUITE_END()
