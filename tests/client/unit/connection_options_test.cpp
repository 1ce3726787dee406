// libpq key=value strings, set()/get(), and form detection.
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/error.hpp>

#include "test_helpers.hpp"

using pg_ingest::ConnectionOptions;
using test::contains;
using test::parse_error;
using test::value_of;

BOOST_AUTO_TEST_SUITE(keyword_value_strings)

BOOST_AUTO_TEST_CASE(empty_or_blank_string_gives_no_parameters) {
    BOOST_TEST(ConnectionOptions("").parameters().empty());
    BOOST_TEST(ConnectionOptions(" \t\n ").parameters().empty());
    BOOST_TEST(ConnectionOptions().parameters().empty());
}

BOOST_AUTO_TEST_CASE(keywords_are_kept_in_order_with_their_values) {
    const ConnectionOptions options("host=db.example.com port=5433 dbname=dw user=loader");
    const std::vector<std::string> expected = {"host=db.example.com", "port=5433", "dbname=dw",
                                               "user=loader"};
    BOOST_TEST(test::flatten(options) == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(spaces_around_equals_are_allowed) {
    const ConnectionOptions options("host = db   port= 5433 dbname =dw");
    BOOST_TEST(value_of(options, "host") == "db");
    BOOST_TEST(value_of(options, "port") == "5433");
    BOOST_TEST(value_of(options, "dbname") == "dw");
}

BOOST_AUTO_TEST_CASE(quoted_value_keeps_spaces_and_unescapes_quote_and_backslash) {
    const ConnectionOptions options(R"(application_name='nightly etl\'s \\ job' user=u)");
    BOOST_TEST(value_of(options, "application_name") == R"(nightly etl's \ job)");
    BOOST_TEST(value_of(options, "user") == "u");
}

BOOST_AUTO_TEST_CASE(empty_quoted_value_is_an_empty_string) {
    const ConnectionOptions options("application_name='' user=u");
    BOOST_TEST(value_of(options, "application_name").empty());
}

BOOST_AUTO_TEST_CASE(backslash_escapes_a_space_in_an_unquoted_value) {
    const ConnectionOptions options(R"(dbname=my\ db)");
    BOOST_TEST(value_of(options, "dbname") == "my db");
}

BOOST_AUTO_TEST_CASE(repeated_keyword_keeps_first_position_and_last_value) {
    const ConnectionOptions options("host=a port=1 host=b");
    BOOST_TEST(options.parameters().size() == 2u);
    BOOST_TEST(options.parameters()[0].first == "host");
    BOOST_TEST(options.parameters()[0].second == "b");
}

BOOST_AUTO_TEST_CASE(dbname_that_looks_like_a_uri_is_taken_literally) {
    const ConnectionOptions options("dbname=postgresql://other/db");
    BOOST_TEST(value_of(options, "dbname") == "postgresql://other/db");
    BOOST_TEST(!options.get("host"));
}

BOOST_AUTO_TEST_CASE(multiple_hosts_with_one_port_each_are_accepted) {
    const ConnectionOptions options("host=a,b,c port=5432,,5434");
    BOOST_TEST(value_of(options, "host") == "a,b,c");
    BOOST_TEST(value_of(options, "port") == "5432,,5434");
}

BOOST_AUTO_TEST_CASE(unknown_keyword_is_an_error_naming_it) {
    const std::string message = parse_error("hots=db port=5432");
    BOOST_TEST(contains(message, "unknown connection option \"hots\""), message);
}

BOOST_AUTO_TEST_CASE(missing_equals_is_an_error_naming_the_keyword) {
    const std::string message = parse_error("host db");
    BOOST_TEST(contains(message, "missing \"=\" after \"host\""), message);
}

// Text without "://" is read as key=value: a URI with a typo in its scheme is one token that
// holds the password, so the message must not quote it.
BOOST_AUTO_TEST_CASE(a_malformed_uri_is_refused_without_echoing_its_password) {
    for (const char* text :
         {"postgresql:/loader:S3cret@db/dw", "postgresql//loader:S3cret@db/dw",
          "loader:S3cret@db:5432/dw", "postgresql:loader:S3cret@db/dw?sslmode=require",
          "postgresql:/loader:S3cret@db/dw?sslmode=require host=x"}) {
        BOOST_TEST_CONTEXT(text) {
            const std::string message = parse_error(text);
            BOOST_TEST(!contains(message, "S3cret"), message);
            BOOST_TEST(contains(message, "postgresql://"), message);
        }
    }
}

BOOST_AUTO_TEST_CASE(missing_keyword_before_equals_is_an_error) {
    BOOST_TEST(contains(parse_error("=db"), "missing keyword"));
}

BOOST_AUTO_TEST_CASE(unterminated_quote_is_an_error_naming_the_keyword) {
    const std::string message = parse_error("host=h application_name='etl");
    BOOST_TEST(contains(message, "unterminated quoted value for \"application_name\""), message);
}

BOOST_AUTO_TEST_CASE(non_numeric_port_is_an_error_about_the_port) {
    for (const char* text :
         {"port=abc", "port=0", "port=65536", "port=-1", "port=123456", "port=' '"}) {
        BOOST_TEST_CONTEXT(text) {
            const std::string message = parse_error(text);
            BOOST_TEST(contains(message, "invalid port"), message);
            BOOST_TEST(contains(message, "1 to 65535"), message);
        }
    }
}

BOOST_AUTO_TEST_CASE(an_empty_port_means_the_default_port_as_in_libpq) {
    BOOST_TEST(value_of(ConnectionOptions("host=db port='' dbname=dw"), "port") == "");
    BOOST_TEST(contains(parse_error("jdbc:postgresql://db:/dw"), "empty port"));
    const ConnectionOptions url("postgresql://db:/dw");
    BOOST_TEST(value_of(url, "host") == "db");
    BOOST_TEST(!url.get("port").has_value());
    BOOST_TEST(value_of(ConnectionOptions("postgresql://a:,b:5433/dw"), "port") == ",5433");
}

BOOST_AUTO_TEST_CASE(bad_entry_in_a_port_list_is_named_by_position) {
    const std::string message = parse_error("host=a,b port=5432,x");
    BOOST_TEST(contains(message, "entry 2 of the port list"), message);
}

BOOST_AUTO_TEST_CASE(port_count_must_match_host_count) {
    const std::string message = parse_error("host=a,b,c port=1,2");
    BOOST_TEST(contains(message, "2 entries for 3 hosts"), message);
}

BOOST_AUTO_TEST_CASE(invalid_sslmode_and_connect_timeout_are_errors) {
    BOOST_TEST(contains(parse_error("sslmode=maybe"), "sslmode must be one of"));
    BOOST_TEST(contains(parse_error("connect_timeout=soon"), "connect_timeout"));
}

// Values libpq checks only when it connects would fail there as a retryable connection error:
// they are refused when parsed, naming the option.
BOOST_AUTO_TEST_CASE(settings_libpq_checks_at_connect_are_refused_when_parsed) {
    for (const char* text :
         {"target_session_attrs=bogus", "gssencmode=bogus", "channel_binding=bogus",
          "keepalives=abc", "keepalives_idle=-1", "tcp_user_timeout=1.5",
          "ssl_min_protocol_version=TLSv9", "postgresql://h/db?target_session_attrs=writable"}) {
        BOOST_TEST_CONTEXT(text) {
            const std::string message = parse_error(text);
            const std::string option =
                std::string(text).substr(std::string(text).find_last_of("?/ ") == std::string::npos
                                             ? 0
                                             : std::string(text).find_last_of("?/") + 1);
            BOOST_TEST(contains(message, option.substr(0, option.find('='))), message);
        }
    }
    for (const char* text : {"target_session_attrs=prefer-standby", "gssencmode=disable",
                             "channel_binding=require", "keepalives=0", "keepalives_idle=30",
                             "tcp_user_timeout=5000", "ssl_max_protocol_version=TLSv1.3"}) {
        BOOST_TEST_CONTEXT(text) {
            BOOST_CHECK_NO_THROW(ConnectionOptions{text});
        }
    }
}

BOOST_AUTO_TEST_CASE(nul_byte_in_a_value_is_an_error) {
    const std::string text("host=a\0b", 8);
    BOOST_TEST(contains(parse_error(text), "NUL"));
}

BOOST_AUTO_TEST_CASE(other_uri_schemes_are_rejected_by_name) {
    const std::string message = parse_error("mysql://root@db/app");
    BOOST_TEST(contains(message, "unsupported URI scheme \"mysql\""), message);
}

BOOST_AUTO_TEST_CASE(other_jdbc_drivers_are_rejected) {
    const std::string message = parse_error("jdbc:mysql://db:3306/app");
    BOOST_TEST(contains(message, "only jdbc:postgresql:"), message);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(set_and_get)

BOOST_AUTO_TEST_CASE(set_replaces_in_place_and_appends_new_keywords) {
    ConnectionOptions options("host=a user=u");
    options.set("user", "loader");
    options.set("password", "pw");
    BOOST_TEST(options.parameters().size() == 3u);
    BOOST_TEST(options.parameters()[1].second == "loader");
    BOOST_TEST(options.parameters()[2].first == "password");
    BOOST_TEST(value_of(options, "password") == "pw");
}

BOOST_AUTO_TEST_CASE(set_validates_keyword_and_value) {
    ConnectionOptions options;
    BOOST_CHECK_THROW(options.set("no_such_option", "x"), pg_ingest::Error);
    BOOST_CHECK_THROW(options.set("port", "http"), pg_ingest::Error);
    BOOST_TEST(options.parameters().empty());
}

BOOST_AUTO_TEST_CASE(get_of_an_unset_keyword_is_nullopt) {
    const ConnectionOptions options("host=a");
    BOOST_TEST(!options.get("port").has_value());
    BOOST_TEST(options.get("host").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
