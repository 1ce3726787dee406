// What the session's last COPY ON CONFLICT did: counts and rejected rows, for
// ingest.last_copy_stats() and ingest.last_copy_rejects().
#pragma once

#include "merge.hpp"

#include <vector>

namespace pg_ingest::session {

// Forgets the previous COPY's results; the new ones are `owner`'s: another role (after SET ROLE,
// say) reads none of them, as rejected rows hold raw input.
void begin_copy(Oid owner);
void forget();  // DISCARD ALL: the session's next client sees no results of this one
// Keeps the row for last_copy_rejects() up to ingest.copy_rejects_kept; counts the rest.
void add_reject(RejectedRow&& r);
uint64_t rejects_not_kept();
void finish_copy(const MergeCounts& c);
// The results, when `reader` ran the last COPY ON CONFLICT; else none.
MergeCounts last_counts(Oid reader);
const std::vector<RejectedRow>& last_rejects(Oid reader);

}  // namespace pg_ingest::session
