// Settings under the reserved "ingest." prefix.
#pragma once

namespace pg_ingest::guc {

// Rows applied per merge statement; with ON_ERROR 'ignore' also the unit that is retried row
// by row when it contains a bad row.
extern int merge_chunk_rows;

void init();

}  // namespace pg_ingest::guc
