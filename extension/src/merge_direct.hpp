// The merge engine's direct apply path. A chunk of winning rows is applied with the executor's
// own building blocks instead of one SQL statement per chunk: the proposed row is checked
// (ExecConstraints), the arbiter index probed (ExecCheckIndexConstraints, which waits for
// in-progress inserters), a new key inserted with the speculative-insertion protocol of
// INSERT ... ON CONFLICT, and an existing row updated with table_tuple_update, re-probing when a
// concurrent transaction changed it first (READ COMMITTED). Lock order and concurrency are
// those of the statement path: rows go in key order and a racing insert of the same key is
// detected by the speculative insertion, never raised as a unique violation.
//
// Why: the statement path pays per row for the function scan, the projection, the
// DO UPDATE WHERE clause that counts conflicts, and a tuple lock (with its WAL record) before
// every update. The direct path does none of that.
//
// It is used only where it does exactly what the statement would do, so for a plain heap table
// with no triggers, rules, row-level security or stored generated columns, under READ
// COMMITTED, for upsert, update and ignore without ON_ERROR 'ignore'. Everything else, and every
// merge when ingest.direct_apply is off, goes through the statement (merge_sql.hpp).
#pragma once

#include "conflict_target.hpp"

extern "C" {
#include "utils/tuplestore.h"
}

#include <cstdint>

namespace pg_ingest {

// Why this merge must use the statement path, or nullptr when the direct path applies.
const char* direct_apply_refusal(const MergeSpec& spec, const ResolvedMerge& res);

struct DirectResult {
    int64_t inserted = 0;
    int64_t updated = 0;       // rows updated
    int64_t updated_rows = 0;  // input rows behind them (sum of group sizes)
};

// Executor state for one merge. Constructed after direct_apply_refusal() said yes, outside the
// subtransactions of apply(); every method may throw PgError. Call close() or abandon(); after
// an error that ends the transaction, its abort releases what is held and the memory goes with
// the caller's memory context, so the destructor does nothing.
class DirectApply {
  public:
    // `chunk_desc`: the chunk rows' descriptor, the source columns then the group size (int8).
    DirectApply(const MergeSpec& spec, const ResolvedMerge& res, TupleDesc chunk_desc);
    DirectApply(const DirectApply&) = delete;
    DirectApply& operator=(const DirectApply&) = delete;

    // Applies every row of `chunk`, in its order, as one command. Errors carry the context line
    // "<what> into <table>, applying rows with ON_CONFLICT '<mode>'" as the statement's do.
    // Run it in a subtransaction: it holds nothing (no buffer pin) from one call to the next.
    DirectResult apply(Tuplestorestate* chunk);
    // After success. Releases everything.
    void close();
    // After a subtransaction around apply() rolled back: frees what that rollback did not
    // (open indexes, memory) without touching slots whose buffer pins went with it.
    void abandon();

    struct State;

  private:
    State* m_state = nullptr;  // palloc'd in its own memory context
};

}  // namespace pg_ingest
