// The merge engine's direct apply path: applying a chunk (see merge_direct.hpp for what and
// why; merge_direct_setup.cpp sets it up, merge_probe.cpp finds existing rows).
#include "merge_direct_state.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am_d.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "catalog/partition.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/hsearch.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/sortsupport.h"
}

namespace pg_ingest {

extern "C" {
// Plain C: adds the line the statement path's errors carry, in place of the outer contexts
// (apply() hides those, as the statement path drops everything from SPI's line outwards), and
// the input line of the row that failed, as plain COPY names it.
static void direct_apply_context(void* arg) {
    const auto* s = static_cast<const pg_ingest::DirectApply::State*>(arg);
    if (s->line > 0 && s->context_position)
        errcontext("%s, %s %lld, %s", s->context_into, s->context_position,
                   static_cast<long long>(s->line), s->context_applying);
    else
        errcontext("%s, %s", s->context_into, s->context_applying);
}
}

namespace {

using direct::partition_target;
using direct::Probe;
using direct::probe_ordered;
using direct::route;

// The pending new rows into the heap with one multi-insert per relation, then their index
// entries in key order. The arbiter's entry is checked as unique (UNIQUE_CHECK_YES).
void flush_pending(DirectApply::State* s, DirectResult* r) {
    if (s->npending == 0)
        return;
    const int64 line = s->line;
    s->line = 0;
    for (DirectTarget* t = s->flush_list; t; t = t->flush_next)
        table_multi_insert(t->rel, t->pending, t->npending, s->estate->es_output_cid, 0,
                           t->bistate);
    for (int i = 0; i < s->npending; i++) {
        DirectTarget* t = s->pending_target[i];
        TupleTableSlot* slot = t->pending[s->pending_slot[i]];
        s->line = s->pending_lines[i];
        if (t->rri->ri_NumIndices > 0)
            list_free(ExecInsertIndexTuples(t->rri, slot, s->estate, false, false, NULL, NIL));
        ExecClearTuple(slot);
    }
    for (DirectTarget* t = s->flush_list; t; t = t->flush_next)
        t->npending = 0;
    s->flush_list = nullptr;
    r->inserted += s->npending;
    s->npending = 0;
    s->pending_bytes = 0;
    s->line = line;
}

// Holds t->ins for the next multi-insert.
void add_pending(DirectApply::State* s, DirectTarget* t, DirectResult* r) {
    if (t->npending == t->nslots) {
        MemoryContext old = MemoryContextSwitchTo(s->cxt);
        t->pending[t->nslots++] = MakeSingleTupleTableSlot(t->desc, table_slot_callbacks(t->rel));
        MemoryContextSwitchTo(old);
    }
    if (t->npending == 0) {
        t->flush_next = s->flush_list;
        s->flush_list = t;
    }
    TupleTableSlot* p = t->pending[t->npending];
    ExecCopySlot(p, t->ins);
    s->pending_target[s->npending] = t;
    s->pending_slot[s->npending] = t->npending++;
    s->pending_lines[s->npending++] = s->line;
    s->pending_bytes += ExecFetchSlotHeapTuple(p, false, NULL)->t_len;
    if (s->npending == kMaxPending || s->pending_bytes >= kMaxPendingBytes)
        flush_pending(s, r);
}

// From a target's first row in an apply() call on: its bulk-insert state and heap fetch, which
// pin buffers and so must not outlive the call's subtransaction.
void use_target(DirectApply::State* s, DirectTarget* t) {
    if (t->in_use)
        return;
    // Not in the row's memory: they live to the end of the call (end_use frees them).
    MemoryContext old = MemoryContextSwitchTo(s->cxt);
    t->bistate = GetBulkInsertState();
    if (t->ordered) {
        // What a batch says is only as fresh as the call.
        t->heap = table_index_fetch_begin(t->rel);
        t->batch_valid = false;
    }
    MemoryContextSwitchTo(old);
    t->in_use = true;
    t->use_next = s->use_list;
    s->use_list = t;
}

void end_use(DirectApply::State* s) {
    for (DirectTarget* t = s->use_list; t; t = t->use_next) {
        if (t->heap)
            table_index_fetch_end(t->heap);
        t->heap = nullptr;
        FreeBulkInsertState(t->bistate);
        t->bistate = nullptr;
        t->in_use = false;
    }
    s->use_list = nullptr;
}

// The index entries of t->upd, the new version of an existing row that apply_row updated
// (not a HOT update). Where the probe found the key's only index entry to be the live row's
// (`single`: rows loaded or last written once, as a first upsert over a bulk load finds them),
// two things UPDATE does would be wasted work, and are skipped:
//  - The arbiter entry's uniqueness check. The entry holds the key of the version just
//    replaced, which no update changes (key columns are never updated, and the direct path
//    runs no triggers). That version stays live to everyone else until this transaction ends,
//    so any other inserter of the key finds it and waits for us, and no other row with the key
//    can exist; the check would only fetch that version's row again.
//  - The "unchanged" hint (ExecInsertIndexTuples' update argument), on every index. It asks
//    btree, before it splits a full leaf page, for a bottom-up deletion pass that removes
//    entries of versions dead to everyone; the only other version is the one this merge
//    replaced, alive until it commits, so the pass would read heap pages for nothing. The page
//    is deduplicated (or split) instead.
// Otherwise (other entries of the key, versions earlier updates left, or a per-row probe that
// cannot tell) the entries are made as UPDATE makes them: the check marks dead entries it
// meets and the pass removes them, so repeated upserts keep the index as compact as the
// statement path keeps it.
void insert_update_entries(DirectTarget* t, EState* estate, bool single) {
    if (!single) {
        if (t->rri->ri_NumIndices > 0)
            list_free(ExecInsertIndexTuples(t->rri, t->upd, estate, true, false, NULL, NIL));
        return;
    }
    if (t->arbiter_pos >= 0) {
        Relation index = t->rri->ri_IndexRelationDescs[t->arbiter_pos];
        IndexInfo* info = t->rri->ri_IndexRelationInfo[t->arbiter_pos];
        Datum values[INDEX_MAX_KEYS];
        bool isnull[INDEX_MAX_KEYS];
        GetPerTupleExprContext(estate)->ecxt_scantuple = t->upd;
        FormIndexDatum(info, t->upd, estate, values, isnull);
        index_insert(index, values, isnull, &t->upd->tts_tid, t->rel, UNIQUE_CHECK_NO, false, info);
    }
    if (t->others->ri_NumIndices > 0)
        list_free(ExecInsertIndexTuples(t->others, t->upd, estate, false, false, NULL, NIL));
}

// One chunk row. Runs inside pg_call: C only, errors longjmp to its PG_TRY.
void apply_row(DirectApply::State* s, DirectResult* r) {
    EState* estate = s->estate;
    const CommandId cid = estate->es_output_cid;
    ResetPerTupleExprContext(estate);
    ExprContext* econtext = GetPerTupleExprContext(estate);
    MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);

    slot_getallattrs(s->src);
    s->line = DatumGetInt64(s->src->tts_values[s->ncols + 1]);
    ExecClearTuple(s->ins);
    for (int i = 0; i < s->natts; i++) {
        const int p = s->source_of[i];
        if (p >= 0) {
            s->ins->tts_values[i] = s->src->tts_values[p];
            s->ins->tts_isnull[i] = s->src->tts_isnull[p];
        } else if (s->defaults[i]) {
            s->ins->tts_values[i] = ExecEvalExpr(s->defaults[i], econtext, &s->ins->tts_isnull[i]);
        } else {
            s->ins->tts_values[i] = (Datum)0;
            s->ins->tts_isnull[i] = true;
        }
    }
    ExecStoreVirtualTuple(s->ins);
    // A partitioned target: the row goes to its partition (routed first, as INSERT does),
    // as that partition's row.
    DirectTarget* t = s->only;
    if (!t) {
        t = partition_target(s, route(s));
        if (t->map) {
            execute_attr_map_slot(t->map, s->ins, t->ins);
        } else {
            ExecClearTuple(t->ins);
            memcpy(t->ins->tts_values, s->ins->tts_values, sizeof(Datum) * s->natts);
            memcpy(t->ins->tts_isnull, s->ins->tts_isnull, sizeof(bool) * s->natts);
            ExecStoreVirtualTuple(t->ins);
        }
    }
    use_target(s, t);
    Relation rel = t->rel;
    TupleDesc rd = RelationGetDescr(rel);
    // INSERT checks the proposed row before it looks for a conflict: its constraints, then the
    // partition constraint of a partition loaded directly (a routed row satisfies its own).
    if (rd->constr)
        ExecConstraints(t->rri, t->ins, estate);
    if (rel->rd_rel->relispartition && s->only)
        ExecPartitionCheck(t->rri, t->ins, estate, true);

    // The first look is the ordered probe's where it applies; a look again after a concurrent
    // change, or where the batch cannot tell, is a per-row probe (it sees the index as it is now).
    bool first = true;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        ItemPointerData conflict;
        const Probe p = first && t->ordered ? probe_ordered(t, &conflict) : Probe::unsure;
        first = false;
        const bool ordered = p != Probe::unsure;
        if (!ordered && t->ordered)
            t->per_row++;
        const bool found =
            ordered ? p == Probe::found
                    : !ExecCheckIndexConstraints(t->rri, t->ins, estate, &conflict, t->arbiters);
        if (!found) {
            // Kept for one multi-insert with its neighbours. A transaction that inserts the
            // same key before our index entry exists makes that entry fail with a unique
            // violation of the arbiter, which sends this chunk and the rest to the statement
            // path (merge.cpp); speculative insertion would avoid that at a price on every row.
            add_pending(s, t, r);
            break;
        }
        if (!s->updates) {
            ExecClearTuple(t->old);
            break;  // ignore: the existing row stays
        }
        // Index entries appear in key order, so new rows before this one go in first.
        flush_pending(s, r);
        if (!ordered && !table_tuple_fetch_row_version(rel, &conflict, SnapshotAny, t->old))
            continue;  // pruned since the probe: look again
        slot_getallattrs(t->old);
        ExecClearTuple(t->upd);
        for (int i = 0; i < t->natts; i++) {
            TupleTableSlot* from = t->updated[i] ? t->ins : t->old;
            t->upd->tts_values[i] = from->tts_values[i];
            t->upd->tts_isnull[i] = from->tts_isnull[i];
        }
        ExecStoreVirtualTuple(t->upd);
        // The partition constraint first, as INSERT ... ON CONFLICT DO UPDATE checks it, and
        // with its error: it moves no row to another partition. (A routed row's key, which holds
        // the partition keys at every level, is never updated.)
        if (rel->rd_rel->relispartition && !ExecPartitionCheck(t->rri, t->upd, estate, false))
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("invalid ON UPDATE specification"),
                            errdetail("The result tuple would appear in a different partition "
                                      "than the original tuple.")));
        if (rd->constr)
            ExecConstraints(t->rri, t->upd, estate);
        TM_FailureData tmfd;
        LockTupleMode lockmode;
        bool update_indexes = false;
        const TM_Result res =
            table_tuple_update(rel, &conflict, t->upd, cid, estate->es_snapshot, InvalidSnapshot,
                               true, &tmfd, &lockmode, &update_indexes);
        ExecClearTuple(t->old);  // drops the buffer pin; upd was materialized by the update
        if (res == TM_Updated || res == TM_Deleted)
            continue;  // READ COMMITTED: a concurrent transaction changed it; look again
        if (res == TM_SelfModified) {
            if (tmfd.cmax != cid)
                elog(ERROR, "pg_ingest: row to merge was already modified by this transaction");
            ereport(ERROR,
                    (errcode(ERRCODE_CARDINALITY_VIOLATION),
                     errmsg("ON CONFLICT DO UPDATE command cannot affect row a second time"),
                     errhint("Ensure that no rows proposed for insertion within the same command "
                             "have duplicate constrained values.")));
        }
        if (res != TM_Ok)
            elog(ERROR, "pg_ingest: unexpected result %d updating a merged row", (int)res);
        if (update_indexes)
            insert_update_entries(t, estate, ordered && !t->other_versions);
        r->updated++;
        break;
    }
    MemoryContextSwitchTo(old);
}

}  // namespace

DirectResult DirectApply::apply(Tuplestorestate* chunk) {
    State* s = m_state;
    DirectResult r;
    pg_call([&] {
        // What SPI does around a statement: a new command and, in READ COMMITTED, a new
        // snapshot (for defaults and CHECK expressions that read tables).
        CommandCounterIncrement();
        PushActiveSnapshot(GetTransactionSnapshot());
        s->estate->es_snapshot = GetActiveSnapshot();
        s->estate->es_output_cid = GetCurrentCommandId(true);
        ErrorContextCallback cb;
        cb.callback = direct_apply_context;
        cb.arg = s;
        cb.previous = nullptr;
        ErrorContextCallback* saved = error_context_stack;  // PG_TRY restores it on error
        error_context_stack = &cb;
        while (tuplestore_gettupleslot(chunk, true, false, s->src))
            apply_row(s, &r);
        s->line = 0;
        ResetPerTupleExprContext(s->estate);
        MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(s->estate));
        flush_pending(s, &r);
        MemoryContextSwitchTo(old);
        end_use(s);
        error_context_stack = saved;
        ExecClearTuple(s->src);
        PopActiveSnapshot();
        CommandCounterIncrement();
    });
    return r;
}

std::string DirectApply::probe_note() const {
    const State* s = m_state;
    int64 batches = 0, per_row = 0;
    bool ordered = false;
    auto add = [&](const DirectTarget* t) {
        ordered = ordered || t->ordered;
        batches += t->batches;
        per_row += t->per_row;
    };
    if (s && s->only) {
        add(s->only);
    } else if (s && s->partitions) {
        HASH_SEQ_STATUS it;
        hash_seq_init(&it, s->partitions);
        while (auto* e =
                   static_cast<std::pair<ResultRelInfo*, DirectTarget*>*>(hash_seq_search(&it)))
            if (e->second)
                add(e->second);
    }
    if (!ordered)
        return "per-row probes";
    return format("ordered probe: %lld batches, %lld per-row", static_cast<long long>(batches),
                  static_cast<long long>(per_row));
}

int64_t DirectApply::failed_line() const {
    return m_state ? m_state->line : 0;
}

}  // namespace pg_ingest
