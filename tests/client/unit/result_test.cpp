#include <stdexcept>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/result.hpp>

using pg_ingest::Result;

BOOST_AUTO_TEST_SUITE(result)

BOOST_AUTO_TEST_CASE(values_are_addressed_row_major_and_null_is_nullopt) {
    const Result result({"id", "name"},
                        {std::string("1"), std::string("a"), std::string("2"), std::nullopt}, 2, 2,
                        "SELECT 2");
    BOOST_TEST(result.rows() == 2u);
    BOOST_TEST(result.columns() == 2u);
    BOOST_TEST(result.column_name(1) == "name");
    BOOST_TEST(*result.get(0, 1) == "a");
    BOOST_TEST(*result.get(1, 0) == "2");
    BOOST_TEST(result.is_null(1, 1));
    BOOST_TEST(!result.is_null(0, 0));
    BOOST_TEST(result.affected_rows() == 2u);
    BOOST_TEST(result.command_tag() == "SELECT 2");
}

BOOST_AUTO_TEST_CASE(out_of_range_access_throws) {
    const Result result({"only"}, {std::string("x")}, 1, 1, "SELECT 1");
    BOOST_CHECK_THROW(result.get(1, 0), std::out_of_range);
    BOOST_CHECK_THROW(result.get(0, 1), std::out_of_range);
    BOOST_CHECK_THROW(result.column_name(1), std::out_of_range);
    BOOST_CHECK_THROW(result.is_null(5, 5), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(rows_without_columns_are_counted) {
    const Result result({}, {}, 3, 3, "SELECT 3");  // SELECT FROM t returns rows, no columns
    BOOST_TEST(result.rows() == 3u);
    BOOST_TEST(result.columns() == 0u);
}

BOOST_AUTO_TEST_CASE(inconsistent_value_count_is_rejected) {
    BOOST_CHECK_THROW(Result({"a", "b"}, {std::string("1")}, 1, 0, ""), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(default_result_is_empty) {
    const Result result;
    BOOST_TEST(result.rows() == 0u);
    BOOST_TEST(result.columns() == 0u);
    BOOST_TEST(result.affected_rows() == 0u);
    BOOST_TEST(result.command_tag().empty());
}

BOOST_AUTO_TEST_SUITE_END()
