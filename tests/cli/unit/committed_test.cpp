// describe_committed / committed_range: the input lines a failed batched load reports as loaded.
#include <boost/test/unit_test.hpp>

#include "committed.hpp"

using namespace pg_ingest::cli;

namespace {

Batch batch_of(std::size_t source, std::uint64_t first_record, std::uint64_t first_line,
               std::uint64_t records) {
    Batch b;
    b.source_index = source;
    b.first_record = first_record;
    b.first_line = first_line;
    b.records = records;
    return b;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(committed_lines)

BOOST_AUTO_TEST_CASE(batches_that_meet_are_one_range_and_gaps_stay_visible) {
    const std::vector<std::string> sources{"a.csv", "b.csv"};
    // Committed out of order, as --parallel commits them; records 7-9 (lines 8-10) failed.
    const std::vector<CommittedRange> ranges{
        committed_range(batch_of(0, 10, 11, 3)), committed_range(batch_of(0, 1, 2, 3)),
        committed_range(batch_of(0, 4, 5, 3)), committed_range(batch_of(1, 1, 1, 2))};
    BOOST_TEST(describe_committed(ranges, sources) ==
                   (std::vector<std::string>{"a.csv lines 2-7, 11-13", "b.csv lines 1-2"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_record_with_line_breaks_extends_its_range_to_its_last_line) {
    Batch b = batch_of(0, 1, 1, 3);
    RecordShape two_breaks;
    two_breaks.newlines = 2;
    b.multiline.push_back({0, two_breaks});  // record 1: lines 1-3
    b.multiline.push_back({2, two_breaks});  // record 3: lines 5-7
    const CommittedRange r = committed_range(b);
    BOOST_TEST(r.first_line == 1u);
    BOOST_TEST(r.last_line == 7u);
    BOOST_TEST(r.last_record == 3u);
    BOOST_TEST(describe_committed({r}, {"x.csv"}) == std::vector<std::string>{"x.csv lines 1-7"},
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(past_the_limit_ranges_are_counted_and_empty_batches_ignored) {
    std::vector<CommittedRange> ranges;
    for (std::uint64_t i = 0; i < 5; ++i) {
        ranges.push_back(committed_range(batch_of(0, 1 + 10 * i, 1 + 10 * i, 2)));
    }
    ranges.push_back(committed_range(batch_of(0, 100, 100, 0)));
    BOOST_TEST(describe_committed(ranges, {"f"}, 3) ==
                   std::vector<std::string>{"f lines 1-2, 11-12, 21-22 and 2 more range(s)"},
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(stdin_a_single_line_and_files_past_the_limit_read_plainly) {
    const std::vector<std::string> sources{"-", "b.csv", "c.csv"};
    const std::vector<CommittedRange> ranges{
        committed_range(batch_of(0, 1, 2, 1)), committed_range(batch_of(0, 5, 6, 2)),
        committed_range(batch_of(1, 1, 1, 2)), committed_range(batch_of(2, 1, 1, 2))};
    BOOST_TEST(
        describe_committed(ranges, sources, 2) ==
            (std::vector<std::string>{"stdin lines 2, 6-7", "2 more range(s) in 2 more file(s)"}),
        boost::test_tools::per_element());
    BOOST_TEST(describe_committed({committed_range(batch_of(1, 3, 4, 1))}, sources) ==
                   std::vector<std::string>{"b.csv line 4"},
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
