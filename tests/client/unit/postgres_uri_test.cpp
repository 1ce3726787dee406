// postgresql:// and postgres:// URIs.
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection_options.hpp>

#include "test_helpers.hpp"

using pg_ingest::ConnectionOptions;
using test::contains;
using test::parse_error;
using test::value_of;

BOOST_AUTO_TEST_SUITE(postgres_uris)

BOOST_AUTO_TEST_CASE(full_uri_maps_every_component_to_its_keyword) {
    const ConnectionOptions options(
        "postgresql://loader:s3cret@db.example.com:5433/warehouse"
        "?application_name=etl&connect_timeout=10");
    BOOST_TEST(value_of(options, "user") == "loader");
    BOOST_TEST(value_of(options, "password") == "s3cret");
    BOOST_TEST(value_of(options, "host") == "db.example.com");
    BOOST_TEST(value_of(options, "port") == "5433");
    BOOST_TEST(value_of(options, "dbname") == "warehouse");
    BOOST_TEST(value_of(options, "application_name") == "etl");
    BOOST_TEST(value_of(options, "connect_timeout") == "10");
}

// An '@' in the query is a value like any other once a '/' has ended the authority (Azure's
// user@server names, e-mail addresses in application_name).
BOOST_AUTO_TEST_CASE(an_at_sign_in_the_query_after_the_path_is_a_plain_value) {
    const ConnectionOptions options(
        "postgresql://srv.example.com/db?user=admin@srv&application_name=me@example.com");
    BOOST_TEST(value_of(options, "user") == "admin@srv");
    BOOST_TEST(value_of(options, "application_name") == "me@example.com");
    BOOST_TEST(value_of(options, "host") == "srv.example.com");
}

BOOST_AUTO_TEST_CASE(postgres_scheme_is_an_alias) {
    const ConnectionOptions options("postgres://h/db");
    BOOST_TEST(value_of(options, "host") == "h");
    BOOST_TEST(value_of(options, "dbname") == "db");
}

BOOST_AUTO_TEST_CASE(two_hosts_with_ports_map_to_parallel_lists) {
    const ConnectionOptions options("postgresql://h1:5432,h2:5433/db");
    BOOST_TEST(value_of(options, "host") == "h1,h2");
    BOOST_TEST(value_of(options, "port") == "5432,5433");
}

BOOST_AUTO_TEST_CASE(host_without_port_gets_an_empty_port_entry) {
    const ConnectionOptions options("postgresql://h1,h2:5433/db");
    BOOST_TEST(value_of(options, "host") == "h1,h2");
    BOOST_TEST(value_of(options, "port") == ",5433");
}

BOOST_AUTO_TEST_CASE(no_port_anywhere_leaves_port_unset) {
    BOOST_TEST(!ConnectionOptions("postgresql://h1,h2/db").get("port"));
}

BOOST_AUTO_TEST_CASE(bracketed_ipv6_host_with_and_without_port) {
    const ConnectionOptions with_port("postgresql://[::1]:5433/db");
    BOOST_TEST(value_of(with_port, "host") == "::1");
    BOOST_TEST(value_of(with_port, "port") == "5433");
    const ConnectionOptions without_port("postgresql://[2001:db8::7]/db");
    BOOST_TEST(value_of(without_port, "host") == "2001:db8::7");
    BOOST_TEST(!without_port.get("port"));
}

BOOST_AUTO_TEST_CASE(components_are_percent_decoded_and_plus_stays_plus) {
    const ConnectionOptions options(
        "postgresql://us%40er:p%40ss%2Fw+rd@%2Ftmp%2Fpg%20sock/my%20db?application_name=a%26b");
    BOOST_TEST(value_of(options, "user") == "us@er");
    BOOST_TEST(value_of(options, "password") == "p@ss/w+rd");
    BOOST_TEST(value_of(options, "host") == "/tmp/pg sock");
    BOOST_TEST(value_of(options, "dbname") == "my db");
    BOOST_TEST(value_of(options, "application_name") == "a&b");
}

BOOST_AUTO_TEST_CASE(missing_database_leaves_dbname_to_libpq_default) {
    BOOST_TEST(!ConnectionOptions("postgresql://h").get("dbname"));
    BOOST_TEST(!ConnectionOptions("postgresql://h/").get("dbname"));
    BOOST_TEST(!ConnectionOptions("postgresql://h:5432?sslmode=disable").get("dbname"));
}

BOOST_AUTO_TEST_CASE(empty_authority_means_all_defaults) {
    BOOST_TEST(ConnectionOptions("postgresql://").parameters().empty());
    const ConnectionOptions options("postgresql:///db");
    BOOST_TEST(!options.get("host"));
    BOOST_TEST(value_of(options, "dbname") == "db");
}

BOOST_AUTO_TEST_CASE(user_without_password_and_empty_password) {
    const ConnectionOptions no_password("postgresql://u@h/db");
    BOOST_TEST(value_of(no_password, "user") == "u");
    BOOST_TEST(!no_password.get("password"));
    BOOST_TEST(value_of(ConnectionOptions("postgresql://u:@h/db"), "password").empty());
}

BOOST_AUTO_TEST_CASE(ssl_true_means_sslmode_require_as_in_libpq) {
    BOOST_TEST(value_of(ConnectionOptions("postgresql://h/db?ssl=true"), "sslmode") == "require");
    BOOST_TEST(contains(parse_error("postgresql://h/db?ssl=false"), "use sslmode"));
}

BOOST_AUTO_TEST_CASE(unknown_query_parameter_is_an_error_naming_it) {
    const std::string message = parse_error("postgresql://h/db?aplication_name=x");
    BOOST_TEST(contains(message, "unknown URI query parameter \"aplication_name\""), message);
}

BOOST_AUTO_TEST_CASE(query_parameter_without_equals_is_an_error) {
    BOOST_TEST(contains(parse_error("postgresql://h/db?sslmode"), "query parameter 1 has no"));
}

BOOST_AUTO_TEST_CASE(bad_port_is_an_error_about_the_port) {
    for (const char* text :
         {"postgresql://h:abc/db", "postgresql://h:70000/db", "postgresql://[::1]:x/db"}) {
        BOOST_TEST_CONTEXT(text) {
            const std::string message = parse_error(text);
            BOOST_TEST(contains(message, "port"), message);
        }
    }
}

BOOST_AUTO_TEST_CASE(malformed_ipv6_hosts_are_errors) {
    BOOST_TEST(contains(parse_error("postgresql://[::1/db"), "missing \"]\""));
    BOOST_TEST(contains(parse_error("postgresql://::1/db"), "brackets"));
    BOOST_TEST(contains(parse_error("postgresql://[::1]x/db"), "after \"]\""));
}

BOOST_AUTO_TEST_CASE(invalid_percent_encoding_is_an_error_naming_the_component) {
    BOOST_TEST(contains(parse_error("postgresql://h/d%zzb"), "percent-encoding in the database"));
    BOOST_TEST(contains(parse_error("postgresql://h/db%4"), "percent-encoding"));
    BOOST_TEST(contains(parse_error("postgresql://h/db%00"), "NUL"));
}

BOOST_AUTO_TEST_CASE(unencoded_at_sign_after_the_host_list_is_an_error) {
    BOOST_TEST(contains(parse_error("postgresql://u:a/b@h/db"), "percent-encode"));
}

BOOST_AUTO_TEST_SUITE_END()
