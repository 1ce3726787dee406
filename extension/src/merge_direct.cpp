// The merge engine's direct apply path (see merge_direct.hpp for what and why).
#include "merge_direct.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
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
#include "utils/snapmgr.h"
#include "utils/sortsupport.h"
}

#include <algorithm>

namespace pg_ingest {

namespace {
// As COPY buffers rows for heap_multi_insert: at most this many rows, or about this many bytes.
constexpr int kMaxPending = 1000;
constexpr size_t kMaxPendingBytes = 65535;
// An ordered probe reads this many index entries at a time (a leaf page holds a few hundred),
// adapting to how many of them the rows use: dense keys read more per descent, sparse keys
// fewer, so that a batch costs about what one per-row probe does.
constexpr int kMinBatch = 8;
constexpr int kMaxBatch = 512;
}  // namespace

struct DirectApply::State {
    MemoryContext cxt;
    Relation rel;
    bool updates;  // upsert with update columns (else DO NOTHING)
    int ncols;     // source columns
    int natts;
    int* source_of;        // per target attribute: source position, or -1
    ExprState** defaults;  // per target attribute not loaded: its default, or NULL
    bool* updated;         // per target attribute: in the update columns
    EState* estate;
    ResultRelInfo* rri;
    List* arbiters;
    TupleTableSlot* src;  // the chunk row
    TupleTableSlot* ins;  // the proposed row (EXCLUDED)
    TupleTableSlot* old;  // the existing row
    TupleTableSlot* upd;  // its new version
    // New rows waiting for one multi-insert: consecutive rows whose keys were not found.
    TupleTableSlot* pending[kMaxPending];
    int npending;
    size_t pending_bytes;
    int64 pending_lines[kMaxPending];
    BulkInsertState bistate;
    // The context line of errors: "<what> into <table>" and "applying rows with ...", with the
    // line of the row being applied between them when there is one and rows are numbered.
    char* context_into;
    char* context_position;  // MergeSpec::position, or null
    char* context_applying;
    int64 line;  // the winning row's line, 0 while no one row is being applied

    // The ordered probe, for a single-column ascending btree arbiter: the chunk's rows come in
    // the index's order, so a batch of index entries read from one descent serves the rows
    // that follow, instead of one descent from the root per row. The batch is a copy (keys and
    // TIDs): no pin is held from one row to the next, as nothing may be while we wait on other
    // transactions. So a TID may have been reused by the time we fetch it, and the row found
    // is checked to hold the key. A row another transaction inserted since the batch was read
    // is not in it; it is caught by the unique check of our own index entry (the chunk is then
    // redone by statement), as is the new version of a row updated since (the old one is dead).
    bool ordered;
    Relation index;
    AttrNumber key_att;  // the key's target attribute
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
    int64 batches;      // for the DEBUG1 line: batches read,
    int64 per_row;      // and per-row probes all the same (many dead entries, a look again)
};

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

const char* direct_apply_refusal(const MergeSpec& spec) {
    Relation rel = spec.target;
    // Not update: UPDATE ... FROM finds rows through its snapshot, where a probe of the index
    // also sees (and waits for) rows inserted since.
    if (spec.mode != ConflictMode::upsert && spec.mode != ConflictMode::ignore)
        return "conflict mode";
    if (spec.ignore_errors)
        return "ON_ERROR 'ignore'";
    // A partition loaded directly is a table like another, whose rows must also satisfy its
    // partition constraint (checked as INSERT and UPDATE do); a partitioned table routes rows.
    if (rel->rd_rel->relkind != RELKIND_RELATION)
        return "partitioned table";
    if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
        return "table access method";
    if (rel->trigdesc)
        return "triggers (foreign keys and deferrable constraints included)";
    if (rel->rd_rules)
        return "rules";
    TupleDesc rd = RelationGetDescr(rel);
    if (rd->constr && rd->constr->has_generated_stored)
        return "generated columns";
    return pg_call([&]() -> const char* {
        if (IsolationUsesXactSnapshot())
            return "isolation level above READ COMMITTED";
        if (check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED)
            return "row-level security";
        for (int i = 0; i < rd->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(rd, i);
            if (att->attisdropped)
                continue;
            bool loaded = false;
            for (AttrNumber a : spec.columns)
                loaded = loaded || a == att->attnum;
            // INSERT checks a domain's constraints on the NULL an omitted column gets.
            if (!loaded && !att->atthasdef && !att->attidentity &&
                get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
                return "omitted column of a domain type";
        }
        return nullptr;
    });
}

namespace {

// Decides whether rows are found with the ordered probe (see State). Its condition: the merge's
// sort order is the index's own, which holds for one key column indexed ascending, nulls last
// (the merge sorts by the index opfamily's "<" and collation, nulls last), and index entries
// hold the column's own type; NULLS NOT DISTINCT indexes are left to the per-row probe.
void init_ordered_probe(DirectApply::State* s, const ConflictTarget& t) {
    s->ordered = false;
    Relation idx = nullptr;
    for (int i = 0; i < s->rri->ri_NumIndices; i++)
        if (RelationGetRelid(s->rri->ri_IndexRelationDescs[i]) == t.index)
            idx = s->rri->ri_IndexRelationDescs[i];
    if (!idx || idx->rd_rel->relam != BTREE_AM_OID || t.keys.size() != 1 || t.nulls_not_distinct ||
        IndexRelationGetNumberOfKeyAttributes(idx) != 1 || idx->rd_indoption[0] != 0 ||
        TupleDescAttr(RelationGetDescr(idx), 0)->atttypid !=
            TupleDescAttr(RelationGetDescr(s->rel), t.keys[0] - 1)->atttypid)
        return;
    const Oid ge = get_opfamily_member(idx->rd_opfamily[0], idx->rd_opcintype[0],
                                       idx->rd_opcintype[0], BTGreaterEqualStrategyNumber);
    if (!OidIsValid(ge))
        return;
    s->index = idx;
    s->key_att = t.keys[0];
    s->key_ge = get_opcode(ge);
    s->key_collation = idx->rd_indcollation[0];
    s->key_order.ssup_cxt = s->cxt;
    s->key_order.ssup_collation = s->key_collation;
    s->key_order.ssup_nulls_first = false;
    s->key_order.ssup_attno = 1;
    PrepareSortSupportFromIndexRel(idx, BTLessStrategyNumber, &s->key_order);
    s->key_byval = TupleDescAttr(RelationGetDescr(idx), 0)->attbyval;
    s->key_len = TupleDescAttr(RelationGetDescr(idx), 0)->attlen;
    InitDirtySnapshot(s->dirty);
    s->batch_cxt = AllocSetContextCreate(s->cxt, "pg_ingest ordered probe", ALLOCSET_DEFAULT_SIZES);
    s->batch_keys = static_cast<Datum*>(palloc(sizeof(Datum) * kMaxBatch));
    s->batch_tids = static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * kMaxBatch));
    s->batch_size = kMinBatch;
    s->ordered = true;
}

}  // namespace

DirectApply::DirectApply(const MergeSpec& spec, const ResolvedMerge& res, TupleDesc chunk_desc) {
    const std::string into = context_into(spec);
    const std::string applying =
        format("applying rows with ON_CONFLICT '%s'", conflict_mode_name(spec.mode));
    m_state = pg_call([&] {
        MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_ingest direct apply",
                                                  ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        State* s = static_cast<State*>(palloc0(sizeof(State)));
        s->cxt = cxt;
        s->rel = spec.target;
        s->updates = spec.mode == ConflictMode::upsert && !res.update_columns.empty();
        s->ncols = static_cast<int>(spec.columns.size());
        TupleDesc rd = RelationGetDescr(s->rel);
        s->natts = rd->natts;
        s->source_of = static_cast<int*>(palloc(sizeof(int) * s->natts));
        s->defaults = static_cast<ExprState**>(palloc0(sizeof(ExprState*) * s->natts));
        s->updated = static_cast<bool*>(palloc0(sizeof(bool) * s->natts));
        s->context_into = pstrdup(into.c_str());
        s->context_position = spec.position.empty() ? nullptr : pstrdup(spec.position.c_str());
        s->context_applying = pstrdup(applying.c_str());

        // What the statement's range table entry would say: it decides which columns an error's
        // "Failing row contains" shows and which indexes an update leaves unchanged.
        RangeTblEntry* rte = makeNode(RangeTblEntry);
        rte->rtekind = RTE_RELATION;
        rte->relid = RelationGetRelid(s->rel);
        rte->relkind = s->rel->rd_rel->relkind;
        rte->rellockmode = RowExclusiveLock;
        rte->requiredPerms = ACL_INSERT | (s->updates ? ACL_UPDATE : 0);
        for (int i = 0; i < s->natts; i++)
            s->source_of[i] = -1;
        for (int p = 0; p < s->ncols; p++) {
            s->source_of[spec.columns[p] - 1] = p;
            rte->insertedCols = bms_add_member(
                rte->insertedCols, spec.columns[p] - FirstLowInvalidHeapAttributeNumber);
        }
        for (AttrNumber a : res.update_columns) {
            s->updated[a - 1] = true;
            rte->updatedCols =
                bms_add_member(rte->updatedCols, a - FirstLowInvalidHeapAttributeNumber);
        }
        for (AttrNumber k : res.target.keys)
            rte->selectedCols =
                bms_add_member(rte->selectedCols, k - FirstLowInvalidHeapAttributeNumber);

        s->estate = CreateExecutorState();
        ExecInitRangeTable(s->estate, list_make1(rte));
        s->rri = makeNode(ResultRelInfo);
        InitResultRelInfo(s->rri, s->rel, 1, NULL, 0);
        // What the executor checks before INSERT ... ON CONFLICT: a table that may take
        // inserts, and for the update path a replica identity when a publication replicates
        // updates (its row filter and column list included); 55000 otherwise, as INSERT says.
        CheckValidResultRel(s->rri, CMD_INSERT);
        if (s->updates)  // an upsert with nothing to update is DO NOTHING
            CheckCmdReplicaIdentity(s->rel, CMD_UPDATE);
        ExecOpenIndices(s->rri, true);  // true: the arbiter gets its unique-check support
        s->arbiters = list_make1_oid(res.target.index);
        init_ordered_probe(s, res.target);

        // Defaults of the columns not loaded, as INSERT evaluates them for every proposed row
        // (identity columns draw from their sequence even when the row ends as an update).
        MemoryContext q = MemoryContextSwitchTo(s->estate->es_query_cxt);
        for (int i = 0; i < s->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(rd, i);
            if (att->attisdropped || s->source_of[i] >= 0)
                continue;
            Expr* def = reinterpret_cast<Expr*>(build_column_default(s->rel, i + 1));
            if (def)
                s->defaults[i] = ExecInitExpr(expression_planner(def), NULL);
        }
        MemoryContextSwitchTo(q);

        // Slots on a copy of the descriptor: one that is not reference-counted. Each slot on the
        // relation's own descriptor would hold a reference in the resource owner, where a
        // thousand equal entries make every other reference (one per index probe) slow. With
        // its constraints: they hold the values of columns added with a default after a row
        // was written (attmissingval), which reading such an old row must fill in, or an update
        // would write NULL there (keys included).
        TupleDesc desc = CreateTupleDescCopyConstr(rd);
        const TupleTableSlotOps* ops = table_slot_callbacks(s->rel);
        s->src = MakeSingleTupleTableSlot(chunk_desc, &TTSOpsMinimalTuple);
        s->ins = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
        s->upd = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
        s->old = MakeSingleTupleTableSlot(desc, ops);
        // A CHECK may read tableoid, as the executor's slots give it.
        s->ins->tts_tableOid = RelationGetRelid(s->rel);
        s->upd->tts_tableOid = RelationGetRelid(s->rel);
        for (int i = 0; i < kMaxPending; i++)
            s->pending[i] = MakeSingleTupleTableSlot(desc, ops);
        MemoryContextSwitchTo(old);
        return s;
    });
}

namespace {

// The pending new rows into the heap with one multi-insert, then their index entries in key
// order. The arbiter's entry is checked as unique (UNIQUE_CHECK_YES).
void flush_pending(DirectApply::State* s, DirectResult* r) {
    if (s->npending == 0)
        return;
    const int64 line = s->line;
    s->line = 0;
    table_multi_insert(s->rel, s->pending, s->npending, s->estate->es_output_cid, 0, s->bistate);
    for (int i = 0; i < s->npending; i++) {
        s->line = s->pending_lines[i];
        if (s->rri->ri_NumIndices > 0)
            list_free(
                ExecInsertIndexTuples(s->rri, s->pending[i], s->estate, false, false, NULL, NIL));
        ExecClearTuple(s->pending[i]);
    }
    r->inserted += s->npending;
    s->npending = 0;
    s->pending_bytes = 0;
    s->line = line;
}

// Ordered probe (see State), run inside pg_call like everything below.

// Reads the batch: up to batch_size entries (or `size`, when given) from the first >= key on.
// The scan ends here, its pins with it.
void read_batch(DirectApply::State* s, Datum key, int size = 0) {
    if (size == 0 && s->batch_valid) {
        // Adapt: the rows used most of the last batch, or hardly any of it.
        if (s->batch_pos >= s->batch_len / 2 && s->batch_len == s->batch_size)
            s->batch_size = std::min(s->batch_size * 2, kMaxBatch);
        else if (s->batch_pos <= 1)
            s->batch_size = std::max(s->batch_size / 2, kMinBatch);
    }
    s->batches++;
    MemoryContextReset(s->batch_cxt);
    MemoryContext old = MemoryContextSwitchTo(s->batch_cxt);
    ScanKeyData sk;
    ScanKeyEntryInitialize(&sk, 0, 1, BTGreaterEqualStrategyNumber, InvalidOid, s->key_collation,
                           s->key_ge, key);
    IndexScanDesc scan = index_beginscan(s->rel, s->index, &s->dirty, 1, 0);
    scan->xs_want_itup = true;  // the entries' keys, without the heap
    index_rescan(scan, &sk, 1, NULL, 0);
    int n = 0;
    const int want = size > 0 ? size : s->batch_size;
    while (n < want && index_getnext_tid(scan, ForwardScanDirection)) {
        bool isnull;
        const Datum k = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull);
        Assert(!isnull);  // ">=" passes no NULL
        s->batch_keys[n] = datumCopy(k, s->key_byval, s->key_len);
        s->batch_tids[n] = scan->xs_heaptid;
        n++;
    }
    index_endscan(scan);
    MemoryContextSwitchTo(old);
    s->batch_len = n;
    s->batch_pos = 0;
    s->batch_to_end = n < want;
    s->batch_valid = true;
}

enum class Probe { none, found, unsure };

// Looks for a row holding `key` among the batch's entries, reading a new batch when the key
// lies beyond it. found: the row is in s->old; unsure: too many dead entries with this key to
// tell from one batch.
Probe probe_batch(DirectApply::State* s, Datum key) {
    auto cmp = [&](int i) {
        return ApplySortComparator(s->batch_keys[i], false, key, false, &s->key_order);
    };
    if (!s->batch_valid || (s->batch_len > 0 && cmp(s->batch_len - 1) < 0 && !s->batch_to_end))
        read_batch(s, key);
    while (s->batch_pos < s->batch_len && cmp(s->batch_pos) < 0)
        s->batch_pos++;
    bool reread = false;
    for (;;) {
        for (int i = s->batch_pos; i < s->batch_len && cmp(i) == 0; i++) {
            bool call_again = false, all_dead = false;
            if (!table_index_fetch_tuple(s->heap, &s->batch_tids[i], &s->dirty, s->old, &call_again,
                                         &all_dead))
                continue;  // no version visible behind this entry; a later entry may have one
            bool isnull;
            const Datum held = slot_getattr(s->old, s->key_att, &isnull);
            if (!isnull && ApplySortComparator(held, false, key, false, &s->key_order) == 0)
                return Probe::found;
            ExecClearTuple(s->old);  // the TID was reused by another row since
        }
        // The entries with this key may go on past the batch: read from the key on, once.
        int last = s->batch_len - 1;
        if (s->batch_to_end || last < s->batch_pos || cmp(last) > 0)
            return Probe::none;
        // A batch that starts with this key and holds nothing else would only be read again.
        if (reread || s->batch_pos == 0)
            return Probe::unsure;
        reread = true;
        read_batch(s, key, kMaxBatch);
    }
}

// Finds the row holding the proposed row's key: found with its version in s->old and its TID in
// *tid, none when there is none, unsure when the caller must probe per row. Waits, as
// ExecCheckIndexConstraints does, for a transaction that is inserting or deleting it.
Probe probe_ordered(DirectApply::State* s, ItemPointer tid) {
    bool isnull;
    const Datum key = slot_getattr(s->ins, s->key_att, &isnull);
    if (isnull)
        return Probe::none;  // a NULL key never conflicts
    for (;;) {
        const Probe p = probe_batch(s, key);
        table_index_fetch_reset(s->heap);  // s->old keeps its own pin
        if (p == Probe::unsure)
            s->batch_valid = false;
        if (p != Probe::found)
            return p;
        const TransactionId xwait =
            TransactionIdIsValid(s->dirty.xmin) ? s->dirty.xmin : s->dirty.xmax;
        if (TransactionIdIsValid(xwait)) {
            ItemPointerData ctid = s->old->tts_tid;
            const uint32 token = s->dirty.speculativeToken;
            ExecClearTuple(s->old);
            if (token)
                SpeculativeInsertionWait(xwait, token);
            else
                XactLockTableWait(xwait, s->rel, &ctid, XLTW_InsertIndex);
            s->batch_valid = false;  // read again what the other transaction left
            continue;
        }
        *tid = s->old->tts_tid;
        return Probe::found;
    }
}

// One chunk row. Runs inside pg_call: C only, errors longjmp to its PG_TRY.
void apply_row(DirectApply::State* s, DirectResult* r) {
    EState* estate = s->estate;
    Relation rel = s->rel;
    const CommandId cid = estate->es_output_cid;
    ResetPerTupleExprContext(estate);
    ExprContext* econtext = GetPerTupleExprContext(estate);
    MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);

    slot_getallattrs(s->src);
    s->line = DatumGetInt64(s->src->tts_values[s->ncols + 1]);
    ExecClearTuple(s->ins);
    TupleDesc rd = RelationGetDescr(rel);
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
    // INSERT checks the proposed row before it looks for a conflict: its constraints, then the
    // partition constraint of a partition loaded directly.
    if (rd->constr)
        ExecConstraints(s->rri, s->ins, estate);
    if (rel->rd_rel->relispartition)
        ExecPartitionCheck(s->rri, s->ins, estate, true);

    // The first look is the ordered probe's where it applies; a look again after a concurrent
    // change, or where the batch cannot tell, is a per-row probe (it sees the index as it is now).
    bool first = true;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        ItemPointerData conflict;
        const Probe p = first && s->ordered ? probe_ordered(s, &conflict) : Probe::unsure;
        first = false;
        const bool ordered = p != Probe::unsure;
        if (!ordered && s->ordered)
            s->per_row++;
        const bool found =
            ordered ? p == Probe::found
                    : !ExecCheckIndexConstraints(s->rri, s->ins, estate, &conflict, s->arbiters);
        if (!found) {
            // Kept for one multi-insert with its neighbours. A transaction that inserts the
            // same key before our index entry exists makes that entry fail with a unique
            // violation of the arbiter, which sends this chunk and the rest to the statement
            // path (merge.cpp); speculative insertion would avoid that at a price on every row.
            s->pending_lines[s->npending] = s->line;
            TupleTableSlot* p = s->pending[s->npending++];
            ExecCopySlot(p, s->ins);
            s->pending_bytes += ExecFetchSlotHeapTuple(p, false, NULL)->t_len;
            if (s->npending == kMaxPending || s->pending_bytes >= kMaxPendingBytes)
                flush_pending(s, r);
            break;
        }
        if (!s->updates) {
            ExecClearTuple(s->old);
            break;  // ignore: the existing row stays
        }
        // Index entries appear in key order, so new rows before this one go in first.
        flush_pending(s, r);
        if (!ordered && !table_tuple_fetch_row_version(rel, &conflict, SnapshotAny, s->old))
            continue;  // pruned since the probe: look again
        slot_getallattrs(s->old);
        ExecClearTuple(s->upd);
        for (int i = 0; i < s->natts; i++) {
            TupleTableSlot* from = s->updated[i] ? s->ins : s->old;
            s->upd->tts_values[i] = from->tts_values[i];
            s->upd->tts_isnull[i] = from->tts_isnull[i];
        }
        ExecStoreVirtualTuple(s->upd);
        // The partition constraint first, as INSERT ... ON CONFLICT DO UPDATE checks it, and
        // with its error: it moves no row to another partition.
        if (rel->rd_rel->relispartition && !ExecPartitionCheck(s->rri, s->upd, estate, false))
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("invalid ON UPDATE specification"),
                            errdetail("The result tuple would appear in a different partition "
                                      "than the original tuple.")));
        if (rd->constr)
            ExecConstraints(s->rri, s->upd, estate);
        TM_FailureData tmfd;
        LockTupleMode lockmode;
        bool update_indexes = false;
        const TM_Result res =
            table_tuple_update(rel, &conflict, s->upd, cid, estate->es_snapshot, InvalidSnapshot,
                               true, &tmfd, &lockmode, &update_indexes);
        ExecClearTuple(s->old);  // drops the buffer pin; upd was materialized by the update
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
        if (update_indexes && s->rri->ri_NumIndices > 0)
            list_free(ExecInsertIndexTuples(s->rri, s->upd, estate, true, false, NULL, NIL));
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
        // Per call: its pinned buffer must not outlive the caller's subtransaction.
        s->bistate = GetBulkInsertState();
        s->estate->es_snapshot = GetActiveSnapshot();
        s->estate->es_output_cid = GetCurrentCommandId(true);
        if (s->ordered) {
            // Per call: its buffer pin must not outlive the caller's subtransaction, and what a
            // batch says is only as fresh as the call.
            s->heap = table_index_fetch_begin(s->rel);
            s->batch_valid = false;
        }
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
        if (s->heap)
            table_index_fetch_end(s->heap);
        s->heap = nullptr;
        FreeBulkInsertState(s->bistate);
        s->bistate = nullptr;
        error_context_stack = saved;
        ExecClearTuple(s->src);
        PopActiveSnapshot();
        CommandCounterIncrement();
    });
    return r;
}

std::string DirectApply::probe_note() const {
    const State* s = m_state;
    if (!s || !s->ordered)
        return "per-row probes";
    return format("ordered probe: %lld batches, %lld per-row", static_cast<long long>(s->batches),
                  static_cast<long long>(s->per_row));
}

int64_t DirectApply::failed_line() const {
    return m_state ? m_state->line : 0;
}

// The slots are not dropped one by one: between calls of apply() they hold no buffer pin (a
// successful call clears them, a rolled-back one took its pins along) and no descriptor
// reference (their descriptors are not reference-counted), so the memory context takes them.
void DirectApply::close() {
    State* s = m_state;
    m_state = nullptr;
    if (!s)
        return;
    pg_call([&] {
        ExecCloseIndices(s->rri);
        FreeExecutorState(s->estate);
        MemoryContextDelete(s->cxt);
    });
}

}  // namespace pg_ingest
