// The export's WHERE filter check: text is quoted or commented out where the server's lexer
// says so, else a parenthesis could slip through (no server needed; the exporter integration
// tests run the filters).
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>
#include <pg_ingest/exporter.hpp>

namespace {

// True when the Exporter takes the filter; a refusal must be 42601. No I/O happens here.
bool accepted(const std::string& where) {
    pg_ingest::ExportOptions options;
    options.table = pg_ingest::QualifiedName::parse("t");
    options.where = where;
    try {
        pg_ingest::Exporter exporter(pg_ingest::ConnectionOptions(), options);
        return true;
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "42601");
        return false;
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(export_filter)

BOOST_AUTO_TEST_CASE(a_dollar_inside_a_name_is_part_of_the_name) {
    BOOST_TEST(!accepted("x$$$ > 40) OR (x$$$ < -45"));
    BOOST_TEST(!accepted("x$ = 1) OR (x$ = 2"));
    BOOST_TEST(!accepted("a$b$ = 1) OR (a$b$ = 2"));
    BOOST_TEST(!accepted("_$$ = 1) OR ($$ = 2"));
    BOOST_TEST(!accepted("\xc3\xa9$$ = 1) OR ($$ = 2"));  // é$$: bytes from 0x80 are letters
    BOOST_TEST(accepted("x$$$ > 40 OR x$$$ < -45"));
    BOOST_TEST(accepted("x$ = 1 OR y$1 = $$)$$"));
}

BOOST_AUTO_TEST_CASE(a_dollar_quote_starts_only_at_the_start_of_a_token) {
    BOOST_TEST(accepted("v = $$)$$"));
    BOOST_TEST(accepted("v = $tag$)$$$tag$"));
    BOOST_TEST(accepted("v = $_1$)$_1$"));
    BOOST_TEST(accepted("v = \"a\"$$)$$"));
    BOOST_TEST(accepted("v = ($$)$$)"));
    BOOST_TEST(accepted("v = $a$ $b$ ) $a$"));  // another tag inside is text
    BOOST_TEST(!accepted("v = $a$ ) $A$"));     // tags are case-sensitive
    BOOST_TEST(!accepted("v = $1$ ) $1$"));     // a parameter, $1, with a '$' run into it
    BOOST_TEST(!accepted("v = $ a$ ) $ a$"));   // a '$' alone
    BOOST_TEST(!accepted("v = $$)"));
}

BOOST_AUTO_TEST_CASE(an_e_string_is_escaped_only_when_the_e_starts_the_token) {
    BOOST_TEST(accepted("v = E'\\')' OR v = e'\\\\'"));
    BOOST_TEST(accepted("v = x'\\' OR (v = ')')"));  // x'...' is plain: no escapes
    BOOST_TEST(!accepted("v = v$e'\\' ) OR ( true --'"));
    BOOST_TEST(!accepted("v = xe'\\' ) OR ( true --'"));
    BOOST_TEST(!accepted("v = _E'\\' ) OR ( true --'"));
}

// 'a'<newline>'b' is one string 'ab' to the server, and a continued E'...' stays escaped.
BOOST_AUTO_TEST_CASE(a_string_continued_on_another_line_keeps_its_escapes) {
    BOOST_TEST(!accepted("v = E'a'\n'\\' ' ) OR ( true --'"));
    BOOST_TEST(!accepted("v = E'a' -- c\n  '\\' ' ) OR ( true --'"));
    BOOST_TEST(!accepted("v = E'a'\r\n\t'\\' ' ) OR ( true --'"));
    BOOST_TEST(accepted("v = E'a'\n'\\' ) OR ( true --'"));
    // Without a newline between them they are two strings (a syntax error on the server).
    BOOST_TEST(accepted("v = E'a' '\\' ' ) OR ( true --'"));
}

BOOST_AUTO_TEST_CASE(numbers_end_where_the_server_ends_them) {
    BOOST_TEST(accepted("a > 1e5 OR a < -4.5E-3 OR a = .5 OR a = 5. OR a = 1..2"));
    BOOST_TEST(accepted("a = 0x1F OR a = 0o17 OR a = 0b101 OR a = 1_000_000 OR a = 1e+1_0"));
    BOOST_TEST(accepted("a = 1--)\n"));
    BOOST_TEST(accepted("a IN (1,2)"));
    // A number run into a name or a '$' is read differently by server versions: refused.
    BOOST_TEST(!accepted("a > 1e5$$ OR b = $$"));
    BOOST_TEST(!accepted("a > 0x1F$$ OR b = $$"));
    BOOST_TEST(!accepted("a > 1_000$$ OR b = $$"));
    BOOST_TEST(!accepted("a > 1e$$ OR b = $$"));
    BOOST_TEST(!accepted("a > 1e'x'"));
    BOOST_TEST(!accepted("a > 0x'1F'"));
    BOOST_TEST(!accepted("a > 1and b"));
    BOOST_TEST(!accepted("a = $1$$ OR b = $$"));
}

BOOST_AUTO_TEST_SUITE_END()
