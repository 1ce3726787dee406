// Resolves what a merge writes and checks it against the target: the conflict target (given
// columns, else the primary key, else the only unique index), the columns to update, and the
// caller's privileges.
#pragma once

#include "merge.hpp"

extern "C" {
#include "access/attnum.h"
}

#include <string>
#include <vector>

namespace pg_ingest {

struct ConflictTarget {
    Oid index = InvalidOid;
    std::string index_name;
    std::vector<AttrNumber> keys;   // target attnums, in index column order
    std::vector<Oid> lt_operators;  // btree "<" of the index opfamily, per key
    std::vector<Oid> eq_operators;  // btree "=" of the index opfamily, per key
    std::vector<Oid> collations;    // index collations, per key
    bool nulls_not_distinct = false;
};

struct ResolvedMerge {
    ConflictTarget target;
    std::vector<AttrNumber> update_columns;  // target attnums SET on conflict / in update
    std::vector<int> key_positions;          // position of each key in MergeSpec::columns
};

// Throws ServerError with a precise SQLSTATE on any problem (see the .cpp for each case).
ResolvedMerge resolve_merge(const MergeSpec& spec);

// Splits an option value such as 'a, "B"' like SQL identifiers (unquoted names fold to
// lower case). Throws 22023 naming the option when it is malformed or empty.
std::vector<std::string> split_identifiers(const std::string& value, const char* option);

}  // namespace pg_ingest
