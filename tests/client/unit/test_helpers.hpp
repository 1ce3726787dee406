// Small helpers shared by the unit tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/error.hpp>

namespace test {

// The value of a keyword, or "<unset>" so that assertions print something readable.
inline std::string value_of(const pg_ingest::ConnectionOptions& options, std::string_view key) {
    const auto value = options.get(key);
    return value ? *value : "<unset>";
}

// Parses `text`, expecting failure; returns the Error message. Parse errors are library-side:
// no SQLSTATE and not retryable.
inline std::string parse_error(std::string_view text) {
    try {
        const pg_ingest::ConnectionOptions options(text);
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate().empty());
        BOOST_TEST(!error.retryable());
        return error.what();
    }
    BOOST_FAIL("expected pg_ingest::Error when parsing: " << text);
    return {};
}

// Parameters as "keyword=value" strings, which Boost.Test can print.
inline std::vector<std::string> flatten(const pg_ingest::ConnectionOptions& options) {
    std::vector<std::string> items;
    for (const auto& [keyword, value] : options.parameters()) {
        items.push_back(keyword + "=" + value);
    }
    return items;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace test
