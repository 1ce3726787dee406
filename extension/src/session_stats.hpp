// What the session's last COPY ON CONFLICT did: counts and rejected rows, for
// ingest.last_copy_stats() and ingest.last_copy_rejects().
#pragma once

#include "merge.hpp"

#include <vector>

namespace pg_ingest::session {

void begin_copy();  // forget the previous COPY's results
void add_reject(RejectedRow&& r);
void finish_copy(const MergeCounts& c);
const MergeCounts& last_counts();
const std::vector<RejectedRow>& last_rejects();

}  // namespace pg_ingest::session
