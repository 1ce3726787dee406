// The merge engine's direct apply path. A chunk of winning rows is applied with the executor's
// own building blocks instead of one SQL statement per chunk: the proposed row is checked
// (defaults, ExecConstraints), the arbiter index probed (ExecCheckIndexConstraints, which waits
// for in-progress inserters; for a one-column ascending btree, batches of index entries matched
// against the sorted rows, with the same waits), an existing row updated with table_tuple_update
// (probed again when a concurrent transaction changed it first), and runs of new keys written with
// one multi-insert, then indexed in key order with the ordinary unique check. Lock order is that of
// the statement path: every wait is for a key above every key this merge has made visible.
//
// Why: the statement path pays per row for the function scan, the projection, the
// DO UPDATE WHERE clause that counts conflicts, a tuple lock (and its WAL record) before every
// update, and speculative insertion instead of a multi-insert.
//
// The caller runs each chunk in a subtransaction and, if it fails (a concurrent insert of one
// of its keys between probe and index entry, or any other error), redoes it through the
// statement, so races and errors are always the statement's (merge.cpp). It is used only where
// that statement is INSERT ... ON CONFLICT on a heap table, a partition of one or a
// partitioned table (rows routed by the executor's tuple routing, each partition written as a
// table) with no triggers, rules or stored generated columns (on any partition), no row-level
// security, under READ COMMITTED, without ON_ERROR 'ignore': upsert and ignore. Everything else,
// and every merge when ingest.direct_apply is off, goes through the statement (merge_sql.hpp).
#pragma once

#include "conflict_target.hpp"

extern "C" {
#include "utils/tuplestore.h"
}

#include <cstdint>
#include <string>

namespace pg_ingest {

// Why this merge must use the statement path, or nullptr when the direct path applies.
const char* direct_apply_refusal(const MergeSpec& spec);

struct DirectResult {
    int64_t inserted = 0;
    int64_t updated = 0;
};

// Executor state for one merge. Constructed after direct_apply_refusal() said yes, outside the
// subtransactions of apply(); every method may throw PgError. Call close(); after
// an error that ends the transaction, its abort releases what is held and the memory goes with
// the caller's memory context, so the destructor does nothing.
class DirectApply {
  public:
    // `chunk_desc`: the chunk rows' descriptor, the source columns then the group size and the
    // winning row's line (int8).
    DirectApply(const MergeSpec& spec, const ResolvedMerge& res, TupleDesc chunk_desc);
    DirectApply(const DirectApply&) = delete;
    DirectApply& operator=(const DirectApply&) = delete;

    // Applies every row of `chunk`, in its order, as one command. Errors carry the context line
    // "<context> into <table>, applying rows with ON_CONFLICT '<mode>'" as the statement's do,
    // with ", <position> <n>" after the table when a row failed and the spec numbers rows (the
    // input line of the key's winning row; see MergeSpec::position).
    // Run it in a subtransaction: it holds nothing (no buffer pin) from one call to the next.
    DirectResult apply(Tuplestorestate* chunk);
    // Releases what the subtransactions of apply() did not (open indexes, memory); also after
    // one of them rolled back.
    void close();
    // How rows were found, for the merge's DEBUG1 line: "per-row probes", or
    // "ordered probe: <n> batches, <m> per-row".
    std::string probe_note() const;
    // After apply() failed: the line of the row it was applying (0 when it was none, e.g. in
    // the multi-insert of new rows).
    int64_t failed_line() const;

    struct State;

  private:
    State* m_state = nullptr;  // palloc'd in its own memory context
};

}  // namespace pg_ingest
