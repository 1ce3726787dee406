// Splitting CSV / text-format records into fields as COPY FROM does (--mode insert|upsert).
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>

#include "fields.hpp"

using namespace pg_ingest::cli;

namespace {

// "a|<NULL>|" style rendering so that failed assertions are readable.
std::string render(const std::vector<Field>& fields) {
    std::string out;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        out += (i == 0 ? "" : "|") + (fields[i] ? *fields[i] : std::string("<NULL>"));
    }
    return out;
}

std::string split(std::string_view record, const FieldSyntax& syntax) {
    std::vector<Field> fields;
    split_record(record, syntax, fields);
    return render(fields);
}

const FieldSyntax k_csv = FieldSyntax::defaults(InputFormat::csv);
const FieldSyntax k_text = FieldSyntax::defaults(InputFormat::text);

}  // namespace

BOOST_AUTO_TEST_SUITE(fields)

BOOST_AUTO_TEST_CASE(csv_fields_are_unquoted_and_doubled_quotes_kept_once) {
    BOOST_TEST(split("1,plain,\"a, b\",\"say \"\"hi\"\"\"\n", k_csv) == "1|plain|a, b|say \"hi\"");
    BOOST_TEST(split("\"multi\nline\",x\r\n", k_csv) == "multi\nline|x");
    // A quote may open mid-field; what it encloses is data, the rest of the field continues.
    BOOST_TEST(split("ab\"c,d\"e,f\n", k_csv) == "abc,de|f");
    BOOST_TEST(split("  blanks kept  ,x\n", k_csv) == "  blanks kept  |x");
    BOOST_TEST(split("ünïcødé,🐘\n", k_csv) == "ünïcødé|🐘");
}

BOOST_AUTO_TEST_CASE(csv_null_is_an_unquoted_match_of_the_null_string) {
    BOOST_TEST(split("1,,\"\",x\n", k_csv) == "1|<NULL>||x");
    BOOST_TEST(split("\n", k_csv) == "<NULL>");
    FieldSyntax dash = k_csv;
    dash.null_string = "-";
    BOOST_TEST(split("-,\"-\",,x\n", dash) == "<NULL>|-||x");
}

BOOST_AUTO_TEST_CASE(csv_custom_delimiter_and_quote) {
    FieldSyntax syntax = k_csv;
    syntax.delimiter = ';';
    syntax.quote = '\'';
    BOOST_TEST(split("a;'b;c';'it''s'\n", syntax) == "a|b;c|it's");
}

BOOST_AUTO_TEST_CASE(csv_unterminated_quote_is_bad_copy_format) {
    std::vector<Field> fields;
    try {
        split_record("1,\"open\n", k_csv, fields);
        BOOST_FAIL("accepted");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "22P04");
        BOOST_TEST(std::string(error.what()) == "unterminated CSV quoted field");
    }
}

BOOST_AUTO_TEST_CASE(text_escapes_are_decoded) {
    BOOST_TEST(split("a\\tb\\nc\\\\d\\re\\bf\\fg\\vh\tx\n", k_text) == "a\tb\nc\\d\re\bf\fg\vh|x");
    BOOST_TEST(split("\\101\\x41\\x4a\\7\\q\n", k_text) == "AAJ\x07q");
    BOOST_TEST(split("escaped\\\tdelimiter\tnext\n", k_text) == "escaped\tdelimiter|next");
    BOOST_TEST(split("line\\\nbreak\n", k_text) == "line\nbreak");
    BOOST_TEST(split("\\xzz\n", k_text) == "xzz");  // \x without hex digits is just x
}

BOOST_AUTO_TEST_CASE(text_null_compares_the_raw_field) {
    BOOST_TEST(split("\\N\t\\\\N\tN\t\n", k_text) == "<NULL>|\\N|N|");
    FieldSyntax empty_null = k_text;
    empty_null.null_string = "";
    BOOST_TEST(split("\tx\n", empty_null) == "<NULL>|x");
}

BOOST_AUTO_TEST_CASE(text_crlf_line_ending_is_not_data) {
    BOOST_TEST(split("1\tx\r\n", k_text) == "1|x");
    BOOST_TEST(split("1\tx", k_text) == "1|x");  // last record without a newline
}

BOOST_AUTO_TEST_CASE(cr_line_ends_are_not_data_but_escaped_crs_are) {
    BOOST_TEST(split("1\tx\r", k_text) == "1|x");
    BOOST_TEST(split("1,\"a\rb\"\r", k_csv) == "1|a\rb");
    // "\\\r\n" in an LF stream: a field ending in an escaped CR, then the line end.
    BOOST_TEST(split("1\ta\\\r\n", k_text) == "1|a\r");
    BOOST_TEST(split("1\ta\\\\\r\n", k_text) == "1|a\\");  // an escaped backslash, then CRLF
    BOOST_TEST(without_line_end("a\\\r\n", InputFormat::text) == "a\\\r");
    BOOST_TEST(without_line_end("a\\\\\r", InputFormat::text) == "a\\\\");
    BOOST_TEST(without_line_end("a\\\r", InputFormat::csv) == "a\\");  // no escapes in CSV
    BOOST_TEST(without_line_end("a\r\n", InputFormat::csv) == "a");
}

BOOST_AUTO_TEST_CASE(end_of_data_marker_is_recognised) {
    BOOST_TEST(is_end_marker("\\.\n"));
    BOOST_TEST(is_end_marker("\\.\r\n"));
    BOOST_TEST(is_end_marker("\\.\r"));
    BOOST_TEST(!is_end_marker("\\.x\n"));
    BOOST_TEST(!is_end_marker("1,2\n"));
}

BOOST_AUTO_TEST_SUITE_END()
