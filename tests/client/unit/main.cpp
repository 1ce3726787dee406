// Boost.Test entry point for the unit suite (no server needed).
#define BOOST_TEST_MODULE pg_ingest_unit_tests
#include <boost/test/unit_test.hpp>
