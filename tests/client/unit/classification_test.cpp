// How the writer classifies flush errors: transient (retry), row (isolate / name), other (throw).
#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>
#include <pg_ingest/writer.hpp>

using pg_ingest::Error;
using pg_ingest::is_row_error;

namespace {
Error server(const char* sqlstate, bool usable = true) {
    return Error("m", sqlstate, "", "", usable);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(classification)

BOOST_AUTO_TEST_CASE(data_and_integrity_errors_are_row_errors) {
    for (const char* state : {"22P02", "22003", "22001", "23505", "23514", "23503", "23502",
                              "21000", "44000", "P0001", "54000"}) {
        BOOST_TEST(is_row_error(server(state)), state);
        BOOST_TEST(!server(state).retryable(), state);
    }
}

BOOST_AUTO_TEST_CASE(transient_and_statement_errors_are_not_row_errors) {
    for (const char* state : {"40001", "40P01", "57P01", "08006", "53300", "42501", "42P01",
                              "0A000", "XX000", "57014", "54001", ""}) {
        BOOST_TEST(!is_row_error(server(state)), state);
    }
    BOOST_TEST(server("40P01").retryable());
    BOOST_TEST(server("08006", false).retryable());
}

BOOST_AUTO_TEST_CASE(a_data_error_on_a_lost_connection_is_not_a_row_error) {
    BOOST_TEST(!is_row_error(server("22P02", false)));
    BOOST_TEST(!is_row_error(Error("library-side problem")));
}

BOOST_AUTO_TEST_SUITE_END()
