// Checks of superseded rows. When a key is repeated inside one merge, only its winning row is
// applied (upsert: the last; ignore: the first). Applied one at a time, as INSERT ... ON
// CONFLICT would, every other row would still have been checked before its conflict was looked
// for: a row that breaks NOT NULL or a CHECK constraint fails the statement even when its key
// exists. So each superseded row gets those checks too (with the defaults and stored generated
// columns INSERT would compute, and their NOT NULL), and so does the last row of a key applied
// with update columns only (its other columns are the first row's), and a bad one is not lost
// without a word: with ON_ERROR 'stop' it fails the merge, with 'ignore' its key is applied one row
// at a time and the row rejected.
//
// Not checked, because a superseded row never reaches the table: foreign keys, triggers,
// row-level security policies, a partition's own CHECK constraints, and the row an UPDATE
// would make of it. Update mode checks nothing here (its UPDATE checks only existing keys), nor
// does a target with a BEFORE ROW INSERT trigger (on it or a partition), which INSERT runs
// before its checks and which may fill what they test. Defaults are evaluated only for the
// columns a CHECK refers to (others could draw from sequences for rows that are never written).
// Rows are checked in key order, so with several bad rows the first one named is not always
// the first in the input.
#pragma once

#include "merge.hpp"

#include <vector>

extern "C" {
#include "executor/tuptable.h"
}

namespace pg_ingest {

class SupersededCheck {
  public:
    // For `spec`'s target; the values of spec.columns come first in the rows given to check().
    // Builds nothing when the target has no NOT NULL or CHECK constraint. Everything it builds
    // lives in a child of `parent` and holds no resource between checks, so it goes with that
    // context (also after an error); the destructor does nothing.
    SupersededCheck(const MergeSpec& spec, const std::vector<AttrNumber>& keys,
                    MemoryContext parent);
    SupersededCheck(const SupersededCheck&) = delete;
    SupersededCheck& operator=(const SupersededCheck&) = delete;

    // False when there is nothing to check (or the mode checks nothing).
    bool active() const { return m_state != nullptr; }
    // Checks the row in `row` (source values first), input line `line`; throws PgError 23502 /
    // 23514 (or whatever a default, generated column or CHECK expression raises) as INSERT
    // would. `applied_mix`: the row is the last of its key, applied with its update columns
    // over the first row's others (only the context line says so).
    void check(TupleTableSlot* row, int64_t line, bool applied_mix = false);

    struct State;

  private:
    State* m_state = nullptr;  // palloc'd in its own memory context
};

}  // namespace pg_ingest
