#include "committed.hpp"

#include <algorithm>

namespace pg_ingest::cli {

CommittedRange committed_range(const Batch& batch) {
    CommittedRange range;
    range.source_index = batch.source_index;
    range.first_record = batch.first_record;
    range.first_line = batch.first_line;
    if (batch.records == 0) {
        range.last_record = batch.first_record - 1;
        range.last_line = batch.first_line;
        return range;
    }
    const std::uint64_t last = batch.records - 1;
    range.last_record = batch.first_record + last;
    // The last record's first line, then the line breaks inside it.
    std::uint64_t line = batch.first_line + last;
    for (const auto& [at, shape] : batch.multiline) {
        if (at < last) {
            line += shape.newlines;
        } else if (at == last) {
            range.last_line = line + shape.newlines;
            return range;
        }
    }
    range.last_line = line;
    return range;
}

std::vector<std::string> describe_committed(std::vector<CommittedRange> ranges,
                                            const std::vector<std::string>& sources,
                                            std::size_t max_ranges) {
    ranges.erase(
        std::remove_if(ranges.begin(), ranges.end(),
                       [](const CommittedRange& r) { return r.last_record < r.first_record; }),
        ranges.end());
    std::sort(ranges.begin(), ranges.end(), [](const CommittedRange& a, const CommittedRange& b) {
        return a.source_index != b.source_index ? a.source_index < b.source_index
                                                : a.first_record < b.first_record;
    });
    std::vector<CommittedRange> merged;
    for (const CommittedRange& r : ranges) {
        if (!merged.empty() && merged.back().source_index == r.source_index &&
            merged.back().last_record + 1 == r.first_record) {
            merged.back().last_record = r.last_record;
            merged.back().last_line = r.last_line;
        } else {
            merged.push_back(r);
        }
    }
    std::vector<std::string> out;
    std::size_t shown = 0;
    std::size_t left = 0;
    std::size_t left_sources = 0;
    for (std::size_t i = 0; i < merged.size();) {
        const std::size_t source = merged[i].source_index;
        const std::string name = source >= sources.size() ? "?"
                                 : sources[source] == "-" ? "stdin"
                                                          : sources[source];
        std::string ranges;
        std::size_t listed = 0;
        std::size_t not_listed = 0;
        for (; i < merged.size() && merged[i].source_index == source; ++i) {
            if (shown >= max_ranges) {
                ++not_listed;
                continue;
            }
            const CommittedRange& r = merged[i];
            ranges += (listed == 0 ? "" : ", ") + std::to_string(r.first_line) +
                      (r.last_line == r.first_line ? "" : "-" + std::to_string(r.last_line));
            ++listed;
            ++shown;
        }
        if (listed > 0) {
            const bool one_line = listed == 1 && ranges.find_first_of(",-") == std::string::npos;
            out.push_back(
                name + (one_line ? " line " : " lines ") + ranges +
                (not_listed > 0 ? " and " + std::to_string(not_listed) + " more range(s)" : ""));
        } else {
            left += not_listed;
            ++left_sources;
        }
    }
    if (left > 0) {
        out.push_back(std::to_string(left) + " more range(s) in " + std::to_string(left_sources) +
                      " more file(s)");
    }
    return out;
}

}  // namespace pg_ingest::cli
