// What the session's last COPY ON CONFLICT did: counts and rejected rows, for
// ingest.last_copy_stats() and ingest.last_copy_rejects().
#pragma once

#include "merge.hpp"

#include <vector>

namespace pg_ingest::session {

void begin_copy();  // forget the previous COPY's results
// Keeps the row for last_copy_rejects() up to ingest.copy_rejects_kept; counts the rest.
void add_reject(RejectedRow&& r);
uint64_t rejects_not_kept();
void finish_copy(const MergeCounts& c);
const MergeCounts& last_counts();
const std::vector<RejectedRow>& last_rejects();

}  // namespace pg_ingest::session
