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
    // Other unique indexes that say the same (a duplicate index, with no primary key): a
    // violation of one of them is a conflict on the key too.
    std::vector<Oid> equivalents;
};

struct ResolvedMerge {
    ConflictTarget target;
    std::vector<AttrNumber> update_columns;  // target attnums SET on conflict / in update
    std::vector<int> key_positions;          // position of each key in MergeSpec::columns
};

// Throws ServerError with a precise SQLSTATE on any problem (see the .cpp for each case).
ResolvedMerge resolve_merge(const MergeSpec& spec);

// Before any lock: the current user has `mode` on the relation (the table or any column) and
// USAGE on its schema. A name would be looked up with that USAGE check; an OID is not, and the
// direct path writes without parsing a name (INSERT INTO hidden.t would say 42501). So no role
// takes, or queues for, a lock on a table it has no right to through our functions.
void check_access_before_lock(Oid relid, AclMode mode);

// USAGE on the relation's schema for the current user (42501), as a name lookup checks it.
void check_schema_usage(Oid relid);

// Splits an option value such as 'a, "B"' like SQL identifiers (unquoted names fold to
// lower case). Throws 22023 naming the option when it is malformed or empty.
std::vector<std::string> split_identifiers(const std::string& value, const char* option);

}  // namespace pg_ingest
