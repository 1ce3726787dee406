// Internal to the direct apply path (merge_direct*.cpp, merge_probe.cpp): its per-merge state
// and the ordered probe. See merge_direct.hpp for what the path does and why.
#pragma once

#include "merge_direct.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/hsearch.h"
#include "utils/resowner.h"
#include "utils/snapshot.h"
#include "utils/sortsupport.h"
}

namespace pg_ingest {

// As COPY buffers rows for heap_multi_insert: at most this many rows, or about this many bytes.
constexpr int kMaxPending = 1000;
constexpr size_t kMaxPendingBytes = 65535;
// An ordered probe reads this many index entries at a time (a leaf page holds a few hundred),
// adapting to how many of them the rows use: dense keys read more per descent, sparse keys
// fewer, so that a batch costs about what one per-row probe does.
constexpr int kMinBatch = 8;
constexpr int kMaxBatch = 512;

// One relation rows are written to: the target itself, or a partition of a partitioned target
// (rows routed as INSERT routes them).
struct DirectTarget {
    Relation rel;
    ResultRelInfo* rri;
    int natts;
    AttrMap* map;   // the target's columns as this partition's (NULL: they line up)
    bool* updated;  // per attribute: in the update columns
    List* arbiters;
    // The index entries of an updated row (see insert_update_entries): the arbiter's, at this
    // position in rri's index arrays, and those of `others`, rri's other indexes.
    int arbiter_pos;
    ResultRelInfo* others;
    TupleTableSlot* ins;  // the proposed row (EXCLUDED)
    TupleTableSlot* old;  // the existing row
    TupleTableSlot* upd;  // its new version
    TupleDesc desc;       // of the slots: a copy, with the constraints
    // Slots of new rows waiting for the multi-insert (see State::pending_*), made when needed.
    TupleTableSlot** pending;
    int npending;
    int nslots;
    DirectTarget* flush_next;  // among the targets with pending rows
    // Per apply() call, from the target's first row on: see DirectApply::apply.
    bool in_use;
    DirectTarget* use_next;
    BulkInsertState bistate;

    // The ordered probe, for a single-column ascending btree arbiter: the chunk's rows come in
    // the index's order, so a batch of index entries read from one descent serves the rows
    // that follow, instead of one descent from the root per row. The batch is a copy (keys and
    // TIDs): no pin is held from one row to the next, as nothing may be while we wait on other
    // transactions. So a TID may have been reused by the time we fetch it, and the row found
    // is checked to hold the key. A row another transaction inserted since the batch was read
    // is not in it; it is caught by the unique check of our own index entry (the chunk is then
    // redone by statement), as is the new version of a row updated since (the old one is dead).
    // A partition's rows are a subsequence of the chunk's, so they too come in key order.
    bool ordered;
    Relation index;
    AttrNumber key_att;  // the key's attribute
    SortSupportData key_order;
    RegProcedure key_ge;  // ">=" of the index opfamily, to position the scan
    Oid key_collation;
    bool key_byval;
    int16 key_len;
    SnapshotData dirty;         // committed and in-progress rows, as a probe sees them
    IndexFetchTableData* heap;  // fetches rows by TID; reset (unpinned) after every probe
    MemoryContext batch_cxt;    // the batch's copies; reset by the next batch
    Datum* batch_keys;
    ItemPointerData* batch_tids;
    int batch_size;  // entries to read next time
    int batch_len;   // entries read
    int batch_pos;   // first entry not below the current row's key
    bool batch_valid;
    bool batch_to_end;  // the batch reaches the end of the index
    // The last probe met other index entries of its key than the live row's (versions left by
    // earlier updates or deletes, or dead ones): btree's bottom-up deletion may remove them.
    bool other_versions;
    int64 batches;  // for the DEBUG1 line: batches read,
    int64 per_row;  // and per-row probes all the same (many dead entries, a look again)
};

struct DirectApply::State {
    MemoryContext cxt;
    Relation rel;  // the merge's target
    bool updates;  // upsert with update columns (else DO NOTHING)
    int ncols;     // source columns
    int natts;
    int* source_of;        // per target attribute: source position, or -1
    ExprState** defaults;  // per target attribute not loaded: its default, or NULL
    bool* updated;         // per target attribute: in the update columns
    EState* estate;
    ResultRelInfo* rri;
    const ConflictTarget* conflict;  // the merge's (valid while it runs)
    TupleTableSlot* src;             // the chunk row
    TupleTableSlot* ins;             // the proposed row, as the target's
    // A plain target: the one relation written. A partitioned one: rows are routed with the
    // executor's tuple routing, as COPY does it, and each partition written to gets its own
    // DirectTarget. Partitions are opened while a chunk's subtransaction runs, but under the
    // resource owner current when the merge began, so that they stay open and locked when a
    // chunk is rolled back, as the statement path would keep them, until close().
    DirectTarget* only;
    ModifyTableState* mtstate;
    PartitionTupleRouting* proute;
    ResourceOwner owner;
    HTAB* partitions;  // ResultRelInfo* -> DirectTarget*
    DirectTarget* last;
    ResultRelInfo* last_rri;
    // New rows waiting for one multi-insert: consecutive rows whose keys were not found, in
    // key order, whatever relation each goes to. Their index entries are made in that order.
    DirectTarget* pending_target[kMaxPending];
    int pending_slot[kMaxPending];
    int64 pending_lines[kMaxPending];
    int npending;
    size_t pending_bytes;
    DirectTarget* flush_list;
    DirectTarget* use_list;
    // The context line of errors: "<what> into <table>" and "applying rows with ...", with the
    // line of the row being applied between them when there is one and rows are numbered.
    char* context_into;
    char* context_position;  // MergeSpec::position, or null
    char* context_applying;
    int64 line;  // the winning row's line, 0 while no one row is being applied
};

// The functions below run inside pg_call: C only, errors longjmp to its PG_TRY.
namespace direct {

// merge_direct_setup.cpp
// The target for a partition the executor routed a row to (made the first time).
DirectTarget* partition_target(DirectApply::State* s, ResultRelInfo* rri);
// The partition of s->ins (as the target's row), by the executor's tuple routing.
ResultRelInfo* route(DirectApply::State* s);

// merge_probe.cpp
void init_ordered_probe(DirectTarget* t, const ConflictTarget& c, Oid index, AttrNumber key_att,
                        MemoryContext cxt);
enum class Probe { none, found, unsure };
Probe probe_ordered(DirectTarget* t, ItemPointer tid);

}  // namespace direct
}  // namespace pg_ingest
