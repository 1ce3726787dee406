// Settings under the reserved "ingest." prefix.
#pragma once

namespace pg_ingest::guc {

// Rows applied per merge statement; with ON_ERROR 'ignore' also the unit that is retried row
// by row when it contains a bad row.
extern int merge_chunk_rows;
// Whether merges may apply chunks directly (merge_direct.hpp) where that is equivalent to the
// statement; off forces the statement path everywhere.
extern bool direct_apply;
// Async load jobs: workers running at once (all databases), seconds an ended job is kept, and
// seconds between the launcher's periodic passes (retention, jobs whose wake-up was missed).
extern int max_workers;
extern int job_retention;
extern int launcher_naptime;
// Milliseconds a worker may spend applying one job before the job fails with 57014 (0: no
// limit). Background workers do not arm statement_timeout; this is its stand-in.
extern int job_timeout;
// Rejected rows of a COPY ON CONFLICT kept for ingest.last_copy_rejects() (the rest counted).
extern int copy_rejects_kept;
// The chunk number of rows staged into an ordered staging table (read by the staging
// table's column default, not by our code).
extern int stage_chunk;

// COPY ... ON_CONFLICT: parallel workers converting the input's fields (parallel_parse.hpp),
// and the rows read before they are started.
extern int copy_parse_workers;
extern int copy_parse_min_rows;

// Upper bound of max_workers: the worker slots in shared memory.
constexpr int max_worker_slots = 64;

void init();

}  // namespace pg_ingest::guc
