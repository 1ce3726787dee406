// Boost.Test entry point for the integration suite. Needs a running PostgreSQL server named by
// PG_INGEST_TEST_DSN (key=value form); every test fails when the variable is unset.
#define BOOST_TEST_MODULE pg_ingest_integration_tests
#include <boost/test/unit_test.hpp>
