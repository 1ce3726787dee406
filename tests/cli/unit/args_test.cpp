// Argument parsing of the pg_ingest subcommands.
#include <string>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "args.hpp"
#include "common.hpp"

using namespace pg_ingest::cli;

namespace {

const std::vector<OptionSpec> k_specs = {
    {"table", "TABLE", "t"}, {"header", "", "h"},         {"option", "KEY=VALUE", "o", true},
    {"parallel", "N", "p"},  {"timeout", "SECONDS", "s"},
};

std::string usage_error(const std::vector<std::string>& args) {
    try {
        parse_args(k_specs, args);
    } catch (const UsageError& error) {
        return error.what();
    }
    BOOST_FAIL("expected a UsageError");
    return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(args)

BOOST_AUTO_TEST_CASE(values_flags_positionals_and_double_dash) {
    const auto parsed =
        parse_args(k_specs, {"a.csv", "--table", "s.t", "--header", "-", "--option=batchsize=10",
                             "--option", "x=y", "--", "--not-an-option"});
    BOOST_TEST(parsed.get("table").value() == "s.t");
    BOOST_TEST(parsed.has("header"));
    BOOST_TEST(!parsed.has("parallel"));
    BOOST_TEST((parsed.all("option") == std::vector<std::string>{"batchsize=10", "x=y"}));
    BOOST_TEST((parsed.positionals() == std::vector<std::string>{"a.csv", "-", "--not-an-option"}));
}

BOOST_AUTO_TEST_CASE(bad_arguments_name_the_problem) {
    BOOST_TEST(usage_error({"--tabel", "t"}).find("unknown option '--tabel'") != std::string::npos);
    BOOST_TEST(usage_error({"--table"}).find("--table needs a value") != std::string::npos);
    BOOST_TEST(usage_error({"--header=yes"}).find("takes no value") != std::string::npos);
    BOOST_TEST(usage_error({"--table", "a", "--table", "b"}).find("more than once") !=
               std::string::npos);
    BOOST_TEST(usage_error({"-t", "x"}).find("unknown option '-t'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(typed_values_are_checked) {
    BOOST_TEST(parse_args(k_specs, {"--parallel", "4"}).get_int("parallel", 1, 64).value() == 4);
    BOOST_CHECK_THROW(parse_args(k_specs, {"--parallel", "0"}).get_int("parallel", 1, 64),
                      UsageError);
    BOOST_CHECK_THROW(parse_args(k_specs, {"--parallel", "4x"}).get_int("parallel", 1, 64),
                      UsageError);
    BOOST_TEST(parse_args(k_specs, {"--timeout", "1.5"}).get_seconds("timeout").value() == 1.5);
    BOOST_CHECK_THROW(parse_args(k_specs, {"--timeout", "-1"}).get_seconds("timeout"), UsageError);
}

BOOST_AUTO_TEST_CASE(lists_and_byte_sizes) {
    BOOST_TEST((split_list(" a, b ,c", "--columns") == std::vector<std::string>{"a", "b", "c"}));
    BOOST_CHECK_THROW(split_list("a,,b", "--columns"), UsageError);
    BOOST_TEST(parse_bytes("100663296", "x") == 100663296u);
    BOOST_TEST(parse_bytes("96MB", "x") == 96u * 1024 * 1024);
    BOOST_TEST(parse_bytes("1.5k", "x") == 1536u);
    BOOST_CHECK_THROW(parse_bytes("12 parsecs", "x"), UsageError);
    BOOST_CHECK_THROW(parse_bytes("0", "x"), UsageError);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(password_scrubbing)

// The CLI's own argument strings lose a --dsn password (ps shows them to every user).
BOOST_AUTO_TEST_CASE(passwords_in_connection_strings_are_overwritten_in_place) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"host=db password=s3cret user=me", "host=db password=xxxxxx user=me"},
        {"host=db password = 's3 \\'x' user=me", "host=db password = 'xxxxxx' user=me"},
        {"postgresql://me:s3cret@db:5432/app", "postgresql://me:xxxxxx@db:5432/app"},
        {"postgresql://me@db/app?sslmode=require&password=s3cret&x=1",
         "postgresql://me@db/app?sslmode=require&password=xxxxxx&x=1"},
        {"jdbc:postgresql://db/app?user=me&password=s3cret",
         "jdbc:postgresql://db/app?user=me&password=xxxxxx"},
        {"host=db user=me", "host=db user=me"},
        {"host=db oldpassword_hint=keep passwordx=keep",
         "host=db oldpassword_hint=keep passwordx=keep"},
        {"host=db sslpassword=KeyPass password=s3cret",
         "host=db sslpassword=xxxxxxx password=xxxxxx"},
        {"postgresql://u:pw@h/db?sslpassword=KeyPass",
         "postgresql://u:xx@h/db?sslpassword=xxxxxxx"},
        {"host=db password\t=s3cret\tuser=me", "host=db password\t=xxxxxx\tuser=me"},
        {"postgresql:/loader:S3cret@db/dw", "postgresql:/loader:xxxxxx@db/dw"},
        {"loader:S3cret@db:5432/dw", "loader:xxxxxx@db:5432/dw"},
        {"host=db mysslpassword=keep", "host=db mysslpassword=keep"},
    };
    for (const auto& [given, expected] : cases) {
        std::string text = given;
        pg_ingest::cli::scrub_password(text.data());
        BOOST_TEST(text == expected);
    }
}

BOOST_AUTO_TEST_CASE(user_text_prints_as_one_line_without_terminal_control_sequences) {
    using pg_ingest::cli::printable;
    BOOST_TEST(printable("checkpoint-42") == "checkpoint-42");
    BOOST_TEST(printable("a\nb\tc\rd") == "a\\nb\\tc\\rd");
    BOOST_TEST(printable("\x1b[2Jred") == "\\x1b[2Jred");
    BOOST_TEST(printable(std::string("nul\0del\x7f", 8)) == "nul\\x00del\\x7f");
    BOOST_TEST(printable("back\\slash") == "back\\\\slash");
    BOOST_TEST(printable("ünïcødé") == "ünïcødé");  // UTF-8 bytes are kept
}

BOOST_AUTO_TEST_SUITE_END()
