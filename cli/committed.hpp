// What a failed batched load leaves committed, by input line: batches commit one by one (with
// --parallel, out of order), so "N rows committed" alone does not say which lines to load again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "records.hpp"

namespace pg_ingest::cli {

// The records of one committed batch (one source; lines from the first record's first line to the
// last record's last line).
struct CommittedRange {
    std::size_t source_index = 0;
    std::uint64_t first_record = 0;
    std::uint64_t last_record = 0;
    std::uint64_t first_line = 0;
    std::uint64_t last_line = 0;
};

// The range of `batch`'s records; records == 0 gives last_record < first_record (nothing).
CommittedRange committed_range(const Batch& batch);

// Ranges merged where they meet, in input order, as "data.csv lines 1-50000, 100001-150000"
// (one string per source); past `max_ranges` ranges the rest is counted, not listed.
std::vector<std::string> describe_committed(std::vector<CommittedRange> ranges,
                                            const std::vector<std::string>& sources,
                                            std::size_t max_ranges = 12);

}  // namespace pg_ingest::cli
