// jdbc:postgresql: URLs, translated to libpq keywords.
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection_options.hpp>

#include "test_helpers.hpp"

using pg_ingest::ConnectionOptions;
using test::contains;
using test::parse_error;
using test::value_of;

BOOST_AUTO_TEST_SUITE(jdbc_urls)

BOOST_AUTO_TEST_CASE(jdbc_url_maps_host_port_and_database) {
    const ConnectionOptions options(
        "jdbc:postgresql://gp-xxxx.gpdb.rds.aliyuncs.com:5433/postgres");
    BOOST_TEST(value_of(options, "host") == "gp-xxxx.gpdb.rds.aliyuncs.com");
    BOOST_TEST(value_of(options, "port") == "5433");
    BOOST_TEST(value_of(options, "dbname") == "postgres");
}

BOOST_AUTO_TEST_CASE(missing_port_defaults_to_5432_as_in_pgjdbc) {
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db"), "port") == "5432");
}

BOOST_AUTO_TEST_CASE(jdbc_url_with_two_hosts_maps_to_comma_separated_host_list) {
    const ConnectionOptions options("jdbc:postgresql://h1:5432,h2:5433/db");
    BOOST_TEST(value_of(options, "host") == "h1,h2");
    BOOST_TEST(value_of(options, "port") == "5432,5433");
}

BOOST_AUTO_TEST_CASE(each_host_without_port_gets_5432) {
    const ConnectionOptions options("jdbc:postgresql://h1,h2:6000,h3/db");
    BOOST_TEST(value_of(options, "host") == "h1,h2,h3");
    BOOST_TEST(value_of(options, "port") == "5432,6000,5432");
}

BOOST_AUTO_TEST_CASE(bracketed_ipv6_hosts) {
    const ConnectionOptions options("jdbc:postgresql://[::1]:5433,[fe80::2]/db");
    BOOST_TEST(value_of(options, "host") == "::1,fe80::2");
    BOOST_TEST(value_of(options, "port") == "5433,5432");
}

BOOST_AUTO_TEST_CASE(host_with_only_a_port_means_localhost) {
    const ConnectionOptions options("jdbc:postgresql://:5433/db");
    BOOST_TEST(value_of(options, "host") == "localhost");
    BOOST_TEST(value_of(options, "port") == "5433");
}

BOOST_AUTO_TEST_CASE(short_forms_default_to_localhost_5432) {
    const ConnectionOptions database_only("jdbc:postgresql:warehouse");
    BOOST_TEST(value_of(database_only, "host") == "localhost");
    BOOST_TEST(value_of(database_only, "port") == "5432");
    BOOST_TEST(value_of(database_only, "dbname") == "warehouse");
    const ConnectionOptions nothing("jdbc:postgresql://");
    BOOST_TEST(value_of(nothing, "host") == "localhost");
    BOOST_TEST(!nothing.get("dbname"));
}

BOOST_AUTO_TEST_CASE(missing_database_after_slash_leaves_dbname_unset) {
    const ConnectionOptions options("jdbc:postgresql://h:5433/?user=u");
    BOOST_TEST(!options.get("dbname"));
    BOOST_TEST(value_of(options, "user") == "u");
}

BOOST_AUTO_TEST_CASE(user_and_password_are_url_decoded_with_plus_as_space) {
    const ConnectionOptions options(
        "jdbc:postgresql://h/my+db?user=etl%40corp&password=p%26ss+w%3Drd%2B");
    BOOST_TEST(value_of(options, "user") == "etl@corp");
    BOOST_TEST(value_of(options, "password") == "p&ss w=rd+");
    BOOST_TEST(value_of(options, "dbname") == "my db");
}

BOOST_AUTO_TEST_CASE(ssl_follows_pgjdbc_semantics) {
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl=true"), "sslmode") ==
               "verify-full");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl"), "sslmode") ==
               "verify-full");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl=false"), "sslmode") ==
               "prefer");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl=true&sslmode=REQUIRE"),
                        "sslmode") == "require");
    BOOST_TEST(!ConnectionOptions("jdbc:postgresql://h/db").get("sslmode"));
    // NonValidatingFactory: encrypted, the certificate not checked (libpq's require).
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl=true&sslfactory=org."
                                          "postgresql.ssl.NonValidatingFactory"),
                        "sslmode") == "require");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?sslfactory=org.postgresql.ssl."
                                          "jdbc4.NonValidatingFactory&sslmode=verify-ca"),
                        "sslmode") == "require");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl=false&sslfactory=org."
                                          "postgresql.ssl.NonValidatingFactory"),
                        "sslmode") == "prefer");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ssl=true&sslfactory=com.acme."
                                          "MyFactory"),
                        "sslmode") == "verify-full");
    BOOST_TEST(contains(parse_error("jdbc:postgresql://h/db?ssl=yes"), "true or false"));
    BOOST_TEST(contains(parse_error("jdbc:postgresql://h/db?sslmode=on"), "sslmode must be"));
}

BOOST_AUTO_TEST_CASE(connect_and_login_timeouts_map_to_connect_timeout_taking_the_smaller) {
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?connectTimeout=10"),
                        "connect_timeout") == "10");
    BOOST_TEST(
        value_of(ConnectionOptions("jdbc:postgresql://h/db?loginTimeout=5&connectTimeout=10"),
                 "connect_timeout") == "5");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?connectTimeout=0&loginTimeout=7"),
                        "connect_timeout") == "7");
    BOOST_TEST(contains(parse_error("jdbc:postgresql://h/db?connectTimeout=1.5"),
                        "connectTimeout must be a whole number of seconds"));
}

BOOST_AUTO_TEST_CASE(application_name_is_translated_and_property_case_is_ignored) {
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?ApplicationName=etl%20job"),
                        "application_name") == "etl job");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?applicationname=x"),
                        "application_name") == "x");
}

BOOST_AUTO_TEST_CASE(current_schema_becomes_a_search_path_option) {
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?currentSchema=staging"),
                        "options") == "-c search_path=staging");
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?currentSchema=my+schema,public"),
                        "options") == R"(-c search_path=my\ schema,public)");
}

BOOST_AUTO_TEST_CASE(options_current_schema_and_read_only_are_combined) {
    const ConnectionOptions options(
        "jdbc:postgresql://h/db?currentSchema=s&options=-c%20work_mem%3D64MB&readOnly=true");
    BOOST_TEST(value_of(options, "options") ==
               "-c work_mem=64MB -c search_path=s -c default_transaction_read_only=on");
}

BOOST_AUTO_TEST_CASE(options_given_twice_keeps_the_last_one_as_pgjdbc_does) {
    const ConnectionOptions options(
        "jdbc:postgresql://h/db?options=-c%20a%3D1&currentSchema=s&options=-c%20b%3D2");
    BOOST_TEST(value_of(options, "options") == "-c b=2 -c search_path=s");
}

BOOST_AUTO_TEST_CASE(target_server_type_and_keepalive_are_translated) {
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://a,b/db?targetServerType=master"),
                        "target_session_attrs") == "primary");
    BOOST_TEST(
        value_of(ConnectionOptions("jdbc:postgresql://a,b/db?targetServerType=preferSecondary"),
                 "target_session_attrs") == "prefer-standby");
    BOOST_TEST(contains(parse_error("jdbc:postgresql://a,b/db?targetServerType=preferPrimary"),
                        "targetServerType"));
    BOOST_TEST(value_of(ConnectionOptions("jdbc:postgresql://h/db?tcpKeepAlive=true"),
                        "keepalives") == "1");
}

BOOST_AUTO_TEST_CASE(java_only_properties_are_ignored_and_reported) {
    const ConnectionOptions options(
        "jdbc:postgresql://h/db?prepareThreshold=0&reWriteBatchedInserts=true&user=u"
        "&socketTimeout=30");
    const std::vector<std::string> expected = {"prepareThreshold", "reWriteBatchedInserts",
                                               "socketTimeout"};
    BOOST_TEST(options.ignored_parameters() == expected, boost::test_tools::per_element());
    BOOST_TEST(options.parameters().size() == 4u);  // host, port, dbname, user
    BOOST_TEST(value_of(options, "user") == "u");
}

BOOST_AUTO_TEST_CASE(unknown_property_is_an_error_naming_it) {
    const std::string message = parse_error("jdbc:postgresql://h/db?user=u&pasword=x");
    BOOST_TEST(contains(message, "unknown JDBC property \"pasword\""), message);
}

BOOST_AUTO_TEST_CASE(property_needing_a_newer_libpq_is_an_error) {
    BOOST_TEST(
        contains(parse_error("jdbc:postgresql://h/db?requireAuth=scram-sha-256"), "requireAuth"));
}

BOOST_AUTO_TEST_CASE(missing_slash_after_hosts_is_an_error) {
    const std::string message = parse_error("jdbc:postgresql://h:5432");
    BOOST_TEST(contains(message, "needs a \"/\" after the host list"), message);
}

BOOST_AUTO_TEST_CASE(too_many_slashes_and_single_slash_forms_are_errors) {
    BOOST_TEST(contains(parse_error("jdbc:postgresql://h/db/x"), "too many \"/\""));
    BOOST_TEST(contains(parse_error("jdbc:postgresql:/db"), "malformed JDBC URL"));
}

BOOST_AUTO_TEST_CASE(user_info_before_host_is_rejected_without_echoing_it) {
    const std::string message = parse_error("jdbc:postgresql://loader:Zq9secret@h/db");
    BOOST_TEST(contains(message, "no user:password@"), message);
    BOOST_TEST(!contains(message, "Zq9secret"), message);
}

BOOST_AUTO_TEST_CASE(bad_port_is_an_error_about_the_port) {
    for (const char* text : {"jdbc:postgresql://h:54x/db", "jdbc:postgresql://h:0/db",
                             "jdbc:postgresql://h1:5432,h2:99999/db"}) {
        BOOST_TEST_CONTEXT(text) {
            const std::string message = parse_error(text);
            BOOST_TEST(contains(message, "invalid port"), message);
        }
    }
    BOOST_TEST(contains(parse_error("jdbc:postgresql://h1:5432,h2:99999/db"), "entry 2"));
}

BOOST_AUTO_TEST_CASE(empty_host_entry_is_an_error) {
    BOOST_TEST(contains(parse_error("jdbc:postgresql://h1,,h2/db"), "host entry 2"));
}

BOOST_AUTO_TEST_SUITE_END()
