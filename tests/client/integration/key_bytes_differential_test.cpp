// append_key_bytes against the server's equality, on random values: the Writer merges rows of a
// batch whose keys give the same bytes (the last one wins), so two keys the server holds apart
// but the bytes make equal would silently lose a row, and the reverse would send the same key
// twice in one statement. For each key type the Writer takes, random values built to collide
// ('1.0' and '1.00', '1 mon' and '30 days', one instant at two UTC offsets, 'ab' and 'ab ' in
// char(n), ...) are loaded through binary COPY; the pairs the server's = calls equal (a self
// join) must be exactly the pairs whose key bytes are equal. Randomised: the seed is printed,
// PG_INGEST_TEST_SEED repeats a run.
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/copy.hpp>
#include <pg_ingest/error.hpp>
#include <pg_ingest/text_value.hpp>
#include <pg_ingest/value.hpp>

#include "test_support.hpp"

using namespace pg_ingest;
using namespace std::chrono_literals;

namespace {

using Random = std::mt19937;

int uniform(Random& r, int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(r);
}

const std::string& one_of(Random& r, const std::vector<std::string>& items) {
    return items[static_cast<std::size_t>(uniform(r, 0, static_cast<int>(items.size()) - 1))];
}

std::string two_digits(int v) {
    return (v < 10 ? "0" : "") + std::to_string(v);
}

// Spellings of a few values, so that equal keys come up often.
std::string numeric_text(Random& r) {
    static const std::vector<std::string> k{"1",
                                            "1.0",
                                            "1.00",
                                            "01",
                                            "1e0",
                                            "10e-1",
                                            "0",
                                            "-0",
                                            "0.0",
                                            "-0.00",
                                            "NaN",
                                            "nan",
                                            "Infinity",
                                            "inf",
                                            "-inf",
                                            "1.005",
                                            "1.004",
                                            "1.0049",
                                            "1.01",
                                            "100e-2",
                                            "0.1e1",
                                            "2",
                                            "2.000000000000000000001"};
    if (uniform(r, 0, 3) == 0) {
        return std::to_string(uniform(r, -3, 3)) + "." + std::to_string(uniform(r, 0, 3));
    }
    return one_of(r, k);
}

std::string float_text(Random& r) {
    static const std::vector<std::string> k{"0",
                                            "-0",
                                            "0.0",
                                            "NaN",
                                            "nan",
                                            "Infinity",
                                            "-Infinity",
                                            "1",
                                            "1.0",
                                            "1e0",
                                            "1.0000000000000002",
                                            "1.00000000000000002",
                                            "1e-320",
                                            "1e-45",
                                            "0.1",
                                            "0.100000001",
                                            "3.4028235e38",
                                            "16777217",
                                            "16777216"};
    return one_of(r, k);
}

std::string interval_text(Random& r) {
    static const std::vector<std::string> k_units{"day",     "hours",   "mon",  "year",
                                                  "minutes", "seconds", "weeks"};
    static const std::vector<std::string> k_fixed{"1 day",
                                                  "24 hours",
                                                  "1 mon",
                                                  "30 days",
                                                  "720 hours",
                                                  "1 year",
                                                  "12 mons",
                                                  "360 days",
                                                  "-1 day",
                                                  "0",
                                                  "1 day -24 hours",
                                                  "1 mon -30 days",
                                                  "2592000 seconds",
                                                  "00:00:00.000001",
                                                  "1 day 00:00:00.000001",
                                                  "1 mon 1 day",
                                                  "31 days",
                                                  "P1M",
                                                  "P30D",
                                                  "PT720H"};
    if (uniform(r, 0, 2) == 0) {
        return one_of(r, k_fixed);
    }
    std::string s;
    const int fields = uniform(r, 1, 2);
    for (int i = 0; i < fields; ++i) {
        s += (i ? " " : "") + std::to_string(uniform(r, -2, 30)) + " " + one_of(r, k_units);
    }
    return s;
}

std::string timestamp_text(Random& r, bool with_offset) {
    std::string s = "2024-01-0" + std::to_string(uniform(r, 1, 2)) + " " +
                    two_digits(uniform(r, 0, 2)) + ":00:0" + std::to_string(uniform(r, 0, 1));
    static const std::vector<std::string> k_fractions{
        "", "", ".4", ".5", ".6", ".49", ".999999", ".9999995", ".0000005", ".000001"};
    s += one_of(r, k_fractions);
    if (with_offset) {
        static const std::vector<std::string> k_offsets{"Z",      "+00",       "+01",      "-01",
                                                        "+00:30", "+01:00:00", "-00:59:60"};
        s += one_of(r, k_offsets);
    }
    return s;
}

std::string time_text(Random& r) {
    static const std::vector<std::string> k{
        "00:00:00",   "24:00:00",   "23:59:59.9999995", "23:59:59.5", "12:00",
        "12:00:00.4", "12:00:00.5", "12:00:00.6",       "12:00:01",   "12:00:00+05"};
    return one_of(r, k);
}

std::string string_text(Random& r) {
    static const std::vector<std::string> k{"ab", "ab ", "ab  ", "AB",        "a",    "a b",
                                            "",   " ",   "é",    "e\xCC\x81", "abcd", "abcd "};
    return one_of(r, k);
}

std::string bytea_text(Random& r) {
    static const std::vector<std::string> k{"\\x41",   "A",  "\\101", "\\x",   "",
                                            "\\x4142", "AB", "\\x00", "\\000", "\\\\"};
    return one_of(r, k);
}

std::string uuid_text(Random& r) {
    static const std::vector<std::string> k{
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a12",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"};
    return one_of(r, k);
}

std::string date_text(Random& r) {
    static const std::vector<std::string> k{"1970-01-01",       "epoch",     "2024-01-01",
                                            "2024-01-01 23:59", "infinity",  "-infinity",
                                            "0001-01-01 BC",    "0000-01-01"};
    return one_of(r, k);
}

std::string boolean_text(Random& r) {
    static const std::vector<std::string> k{"t", "true", "yes", "on", "1", "f", "no", "off", "0"};
    return one_of(r, k);
}

std::string int_array_text(Random& r) {
    static const std::vector<std::string> k{"{1,2}",  "{ 1 , 2 }", "{\"1\",2}", "[1:2]={1,2}", "{}",
                                            "{NULL}", "{1,NULL}",  "{1}",       "{01,2}"};
    return one_of(r, k);
}

std::string text_array_text(Random& r) {
    static const std::vector<std::string> k{"{a,b}", "{\"a\",\"b\"}", "{ a , b }",  "{\"a \",b}",
                                            "{A,b}", "{NULL}",        "{\"NULL\"}", "{}"};
    return one_of(r, k);
}

std::string timestamp_array_text(Random& r) {
    return "{\"" + timestamp_text(r, false) + "\",\"" + timestamp_text(r, false) + "\"}";
}

struct KeyCase {
    std::string type_sql;
    std::function<std::string(Random&)> generate;
    int count = 150;
};

// The pairs (i < j) the two readings call equal, and what differs.
std::string compare_case(Connection& c, const KeyCase& k, std::uint32_t seed) {
    Random r(seed);
    c.execute("DROP TABLE IF EXISTS key_diff");
    c.execute("CREATE TABLE key_diff (id int, v " + k.type_sql + ")");
    const ColumnType column = test::column_type(c, "key_diff", "v");
    BOOST_REQUIRE(key_bytes_supported(column));
    std::vector<std::string> texts;
    std::vector<std::string> keys;
    std::string data(binary_copy_header());
    for (int i = 0; i < k.count; ++i) {
        const std::string text = k.generate(r);
        std::string field;
        std::string key;
        try {
            const Value v = parse_text_value(text, column, "v");
            encode_field(v, column, field, "v");
            append_key_bytes(v, column, key);
        } catch (const Error&) {
            continue;  // the differential text test covers what is refused
        }
        test::append_binary_row(data, static_cast<std::uint32_t>(texts.size()), field);
        texts.push_back(text);
        keys.push_back(key);
    }
    data += binary_copy_trailer();
    {
        CopyIn copy(c, "COPY key_diff FROM STDIN (FORMAT binary)", Connection::Clock::now() + 30s);
        copy.write(data);
        copy.finish();
    }
    const Result equal =
        c.execute("SELECT a.id, b.id FROM key_diff a JOIN key_diff b ON a.v = b.v AND a.id < b.id");
    std::set<std::pair<std::size_t, std::size_t>> server;
    for (std::size_t row = 0; row < equal.rows(); ++row) {
        server.emplace(std::stoul(*equal.get(row, 0)), std::stoul(*equal.get(row, 1)));
    }
    BOOST_TEST_MESSAGE(k.type_sql << ": " << texts.size() << " values, " << server.size()
                                  << " equal pairs for the server");
    // Built to collide: a case without equal pairs would test nothing.
    BOOST_TEST(!server.empty(), k.type_sql << ": no equal pairs");
    std::string out;
    int shown = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        for (std::size_t j = i + 1; j < texts.size(); ++j) {
            const bool by_server = server.count({i, j}) != 0;
            const bool by_bytes = keys[i] == keys[j];
            if (by_server != by_bytes && shown++ < 20) {
                out += "\n  " + k.type_sql + ": \"" + texts[i] + "\" and \"" + texts[j] +
                       "\" are " + (by_server ? "equal" : "different") + " for the server, " +
                       (by_bytes ? "equal" : "different") + " by key bytes";
            }
        }
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(key_bytes_differential)

BOOST_AUTO_TEST_CASE(keys_are_equal_by_bytes_exactly_when_the_server_calls_them_equal) {
    const std::uint32_t seed = test::seed();
    BOOST_TEST_MESSAGE("key bytes differential seed " << seed
                                                      << " (PG_INGEST_TEST_SEED to repeat)");
    const std::vector<KeyCase> cases{
        {"numeric", numeric_text},
        {"numeric(6,2)", numeric_text},
        {"numeric(3,-1)", numeric_text},
        {"double precision", float_text},
        {"real", float_text},
        {"interval", interval_text},
        {"interval(0)", interval_text},
        {"timestamp", [](Random& r) { return timestamp_text(r, false); }},
        {"timestamp(0)", [](Random& r) { return timestamp_text(r, false); }},
        {"timestamptz", [](Random& r) { return timestamp_text(r, true); }},
        {"timestamptz(1)", [](Random& r) { return timestamp_text(r, true); }},
        {"time", time_text},
        {"time(0)", time_text},
        {"date", date_text},
        {"text", string_text},
        {"varchar(3)", string_text},
        {"char(4)", string_text},
        {"bytea", bytea_text},
        {"uuid", uuid_text},
        {"boolean", boolean_text},
        {"integer[]", int_array_text},
        {"text[]", text_array_text},
        {"timestamp(0)[]", timestamp_array_text},
    };
    Connection c = test::connect();
    c.execute("SET TimeZone = 'UTC'");
    std::string differences;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        differences += compare_case(c, cases[i], seed + static_cast<std::uint32_t>(i));
    }
    c.execute("DROP TABLE IF EXISTS key_diff");
    BOOST_TEST(differences.empty(),
               "keys compared differently (seed " << seed << "):" << differences);
}

BOOST_AUTO_TEST_SUITE_END()
