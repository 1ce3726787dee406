// Builds the statement that applies a merge chunk: INSERT ... ON CONFLICT for upsert, ignore
// and strict, UPDATE ... FROM for update, reading rows from ingest._merge_rows(handle).
#pragma once

#include "conflict_target.hpp"

#include <string>

namespace pg_ingest {

// How an upsert tells the rows it inserted from the ones it updated. The DO UPDATE WHERE clause
// counts the rows that took the update path (conflicts); a BEFORE UPDATE row trigger may still
// skip such an update, so where the target or a partition has one:
//   returning  plain target: the statement returns one row (rows written, rows inserted),
//              from RETURNING xmax = 0 (an updated row carries our lock in xmax);
//   by_groups  partitioned target (RETURNING cannot read xmax there), or a caller without
//              SELECT on the whole table (xmax needs it): inserted = groups - conflicts,
//              exact unless a BEFORE INSERT row trigger also skips rows.
enum class UpsertCounting { conflicts, returning, by_groups };

// Whether `has` holds for `rel` or, for a partitioned table, any of its partitions at every
// level (which it locks in AccessShareLock to read them). `has` must not ereport.
bool any_in_tree(Relation rel, bool (*has)(Relation));
UpsertCounting upsert_counting(const MergeSpec& spec, const ResolvedMerge& res);

// `counting` is upsert_counting()'s answer for the same spec (it opens every partition, so the
// caller asks once).
std::string merge_statement_sql(const MergeSpec& spec, const ResolvedMerge& res, int handle,
                                UpsertCounting counting);

}  // namespace pg_ingest
