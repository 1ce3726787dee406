// Builds the statement that applies a merge chunk: INSERT ... ON CONFLICT for upsert, ignore
// and strict, UPDATE ... FROM for update, reading rows from ingest._merge_rows(handle).
#pragma once

#include "conflict_target.hpp"

#include <string>

namespace pg_ingest {

std::string merge_statement_sql(const MergeSpec& spec, const ResolvedMerge& res, int handle);

}  // namespace pg_ingest
