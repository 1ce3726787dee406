// Boost.Test entry point for the CLI's unit tests (no server needed).
#define BOOST_TEST_MODULE pg_ingest_cli_unit_tests
#include <boost/test/unit_test.hpp>
