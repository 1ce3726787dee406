// redacted() and the rule that passwords never reach error messages.
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection_options.hpp>

#include "test_helpers.hpp"

using pg_ingest::ConnectionOptions;
using test::contains;
using test::parse_error;
using test::value_of;

BOOST_AUTO_TEST_SUITE(redaction)

BOOST_AUTO_TEST_CASE(password_never_appears_in_redacted_output_of_any_form) {
    const std::vector<std::string> inputs = {
        "host=h user=u password=Zq9secret",
        R"(host=h user=u password='Zq9 se\'cret')",
        "postgresql://u:Zq9secret@h:5432/db",
        "postgres://u:Zq9%20secret@h/db",
        "postgresql://h/db?user=u&password=Zq9secret",
        "jdbc:postgresql://h:5432/db?user=u&password=Zq9secret",
        "jdbc:postgresql://h/db?password=Zq9+secret&user=u",
    };
    for (const auto& input : inputs) {
        BOOST_TEST_CONTEXT(input) {
            const ConnectionOptions options(input);
            BOOST_TEST_REQUIRE(options.get("password").has_value());
            const std::string redacted = options.redacted();
            BOOST_TEST(!contains(redacted, "Zq9"), redacted);
            BOOST_TEST(!contains(redacted, "secret"), redacted);
            BOOST_TEST(contains(redacted, "password=***"), redacted);
            BOOST_TEST(contains(redacted, "user=u"), redacted);
            BOOST_TEST(contains(redacted, "host=h"), redacted);
        }
    }
}

BOOST_AUTO_TEST_CASE(ssl_key_password_is_redacted_too) {
    const ConnectionOptions options("jdbc:postgresql://h/db?sslpassword=Zq9secret");
    BOOST_TEST(!contains(options.redacted(), "Zq9secret"));
    BOOST_TEST(contains(options.redacted(), "sslpassword=***"));
}

BOOST_AUTO_TEST_CASE(redacted_output_quotes_values_so_libpq_reads_them_back) {
    const ConnectionOptions options(R"(host=h application_name='etl job\'s' options='' user=u)");
    const std::string redacted = options.redacted();
    BOOST_TEST(redacted == R"(host=h application_name='etl job\'s' options='' user=u)");
    const ConnectionOptions reparsed(redacted);
    BOOST_TEST(test::flatten(reparsed) == test::flatten(options), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(redacted_without_password_has_no_password_keyword) {
    const ConnectionOptions options("postgresql://u@h/db");
    BOOST_TEST(options.redacted() == "user=u host=h dbname=db");
}

BOOST_AUTO_TEST_CASE(parse_errors_never_contain_the_password) {
    // Each input is malformed somewhere near a password; none may echo any part of it.
    const std::vector<std::string> inputs = {
        "host=h password=Zq9secret port=bad",
        "host=h password=Zq9secret Zq9tail",
        "host=h password=Zq9secret Zq9tail=1",
        "host=h password='Zq9secret",
        "postgresql://u:Zq9secret@h:bad/db",
        "postgresql://u:Zq9sec%zzret@h/db",
        "postgresql://u:Zq9se/cret@h/db",
        "postgresql://u:Zq9se?cret@h/db",
        "postgresql://u:Zq9se?Zq9tail=cret@h/db",
        "postgresql://u:Zq9se?sslmode=cret@h/db",
        "postgresql://h/db?password=Zq9secret&Zq9tail=1",
        "jdbc:postgresql://u:Zq9secret@h/db",
        "jdbc:postgresql://h/db?password=Zq9secret&Zq9tail",
        "jdbc:postgresql://h/db?password=Zq9sec%zzret",
        "jdbc:postgresql://h:Zq9secret/db",
        "mysql://u:Zq9secret@h/db",
    };
    for (const auto& input : inputs) {
        BOOST_TEST_CONTEXT(input) {
            const std::string message = parse_error(input);
            BOOST_TEST(!contains(message, "Zq9"), message);
            BOOST_TEST(!contains(message, "cret"), message);
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
