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

#include "merge_sql.hpp"

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
    int64 batches;      // for the DEBUG1 line: batches read,
    int64 per_row;      // and per-row probes all the same (many dead entries, a look again)
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

// What the direct path cannot write: the reason, or nullptr. For a partitioned table, of the
// table and of each of its partitions (a partition loaded directly is a table like another,
// whose rows must also satisfy its partition constraint, checked as INSERT and UPDATE do).
const char* relation_refusal(Relation rel) {
    const char kind = rel->rd_rel->relkind;
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
        return "a partition that is not a table";
    if (kind == RELKIND_RELATION && rel->rd_rel->relam != HEAP_TABLE_AM_OID)
        return "table access method";
    if (rel->trigdesc)
        return "triggers (foreign keys and deferrable constraints included)";
    if (rel->rd_rules)
        return "rules";
    TupleDesc rd = RelationGetDescr(rel);
    if (rd->constr && rd->constr->has_generated_stored)
        return "generated columns";
    return nullptr;
}

const char* g_tree_refusal;  // what any_in_tree() found, for the message

bool refused_in_tree(Relation rel) {
    g_tree_refusal = relation_refusal(rel);
    return g_tree_refusal != nullptr;
}

}  // namespace

const char* direct_apply_refusal(const MergeSpec& spec) {
    Relation rel = spec.target;
    // Not update: UPDATE ... FROM finds rows through its snapshot, where a probe of the index
    // also sees (and waits for) rows inserted since.
    if (spec.mode != ConflictMode::upsert && spec.mode != ConflictMode::ignore)
        return "conflict mode";
    if (spec.ignore_errors)
        return "ON_ERROR 'ignore'";
    if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) {
        // Every partition, as the statement would only lock those it routes rows to: a lock
        // for reading, taken for the transaction (as the statement's count of updates does).
        if (any_in_tree(rel, refused_in_tree))
            return g_tree_refusal;
    } else if (const char* why = relation_refusal(rel)) {
        return why;
    }
    TupleDesc rd = RelationGetDescr(rel);
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

// Decides whether rows are found with the ordered probe (see DirectTarget). Its condition: the
// merge's sort order is the index's own, which holds for one key column indexed ascending, nulls
// last (the merge sorts by the index opfamily's "<" and collation, nulls last), and index entries
// hold the column's own type; NULLS NOT DISTINCT indexes are left to the per-row probe.
// `key_att`: the key's attribute in t->rel.
void init_ordered_probe(DirectTarget* t, const ConflictTarget& c, Oid index, AttrNumber key_att,
                        MemoryContext cxt) {
    t->ordered = false;
    Relation idx = nullptr;
    for (int i = 0; i < t->rri->ri_NumIndices; i++)
        if (RelationGetRelid(t->rri->ri_IndexRelationDescs[i]) == index)
            idx = t->rri->ri_IndexRelationDescs[i];
    if (!idx || idx->rd_rel->relam != BTREE_AM_OID || c.keys.size() != 1 || c.nulls_not_distinct ||
        key_att <= 0 || IndexRelationGetNumberOfKeyAttributes(idx) != 1 ||
        idx->rd_indoption[0] != 0 ||
        TupleDescAttr(RelationGetDescr(idx), 0)->atttypid !=
            TupleDescAttr(RelationGetDescr(t->rel), key_att - 1)->atttypid)
        return;
    const Oid ge = get_opfamily_member(idx->rd_opfamily[0], idx->rd_opcintype[0],
                                       idx->rd_opcintype[0], BTGreaterEqualStrategyNumber);
    if (!OidIsValid(ge))
        return;
    t->index = idx;
    t->key_att = key_att;
    t->key_ge = get_opcode(ge);
    t->key_collation = idx->rd_indcollation[0];
    t->key_order.ssup_cxt = cxt;
    t->key_order.ssup_collation = t->key_collation;
    t->key_order.ssup_nulls_first = false;
    t->key_order.ssup_attno = 1;
    PrepareSortSupportFromIndexRel(idx, BTLessStrategyNumber, &t->key_order);
    t->key_byval = TupleDescAttr(RelationGetDescr(idx), 0)->attbyval;
    t->key_len = TupleDescAttr(RelationGetDescr(idx), 0)->attlen;
    InitDirtySnapshot(t->dirty);
    t->batch_cxt = AllocSetContextCreate(cxt, "pg_ingest ordered probe", ALLOCSET_DEFAULT_SIZES);
    t->batch_keys = static_cast<Datum*>(palloc(sizeof(Datum) * kMaxBatch));
    t->batch_tids = static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * kMaxBatch));
    t->batch_size = kMinBatch;
    t->ordered = true;
}

// A target for `rri` (the merge's target, or a partition the executor opened for it, with its
// indexes) writing through `arbiter`, an index of rri's relation. In s->cxt.
DirectTarget* make_target(DirectApply::State* s, ResultRelInfo* rri, Oid arbiter, AttrMap* map) {
    MemoryContext old = MemoryContextSwitchTo(s->cxt);
    auto* t = static_cast<DirectTarget*>(palloc0(sizeof(DirectTarget)));
    t->rel = rri->ri_RelationDesc;
    t->rri = rri;
    t->map = map;
    TupleDesc rd = RelationGetDescr(t->rel);
    t->natts = rd->natts;
    t->updated = static_cast<bool*>(palloc0(sizeof(bool) * t->natts));
    AttrNumber key_att = 0;
    const AttrNumber key = s->conflict->keys.size() == 1 ? s->conflict->keys[0] : 0;
    for (int i = 0; i < t->natts; i++) {
        // map->attnums[i]: the target's attribute that this relation's attribute i + 1 is
        const AttrNumber a = map ? map->attnums[i] : static_cast<AttrNumber>(i + 1);
        if (a <= 0)
            continue;
        t->updated[i] = s->updated[a - 1];
        if (a == key)
            key_att = static_cast<AttrNumber>(i + 1);
    }
    t->arbiters = list_make1_oid(arbiter);
    // The same ResultRelInfo without the arbiter, for ExecInsertIndexTuples on updated rows.
    t->arbiter_pos = -1;
    t->others = makeNode(ResultRelInfo);
    *t->others = *rri;
    t->others->ri_NumIndices = 0;
    if (rri->ri_NumIndices > 0) {
        t->others->ri_IndexRelationDescs =
            static_cast<RelationPtr>(palloc(sizeof(Relation) * rri->ri_NumIndices));
        t->others->ri_IndexRelationInfo =
            static_cast<IndexInfo**>(palloc(sizeof(IndexInfo*) * rri->ri_NumIndices));
    }
    for (int i = 0; i < rri->ri_NumIndices; i++) {
        if (t->arbiter_pos < 0 && RelationGetRelid(rri->ri_IndexRelationDescs[i]) == arbiter) {
            t->arbiter_pos = i;
            continue;
        }
        const int n = t->others->ri_NumIndices++;
        t->others->ri_IndexRelationDescs[n] = rri->ri_IndexRelationDescs[i];
        t->others->ri_IndexRelationInfo[n] = rri->ri_IndexRelationInfo[i];
    }
    init_ordered_probe(t, *s->conflict, arbiter, key_att, s->cxt);
    // Slots on a copy of the descriptor: one that is not reference-counted. Each slot on the
    // relation's own descriptor would hold a reference in the resource owner, where a
    // thousand equal entries make every other reference (one per index probe) slow. With
    // its constraints: they hold the values of columns added with a default after a row
    // was written (attmissingval), which reading such an old row must fill in, or an update
    // would write NULL there (keys included).
    t->desc = CreateTupleDescCopyConstr(rd);
    t->ins = MakeSingleTupleTableSlot(t->desc, &TTSOpsVirtual);
    t->upd = MakeSingleTupleTableSlot(t->desc, &TTSOpsVirtual);
    t->old = MakeSingleTupleTableSlot(t->desc, table_slot_callbacks(t->rel));
    // A CHECK may read tableoid, as the executor's slots give it.
    t->ins->tts_tableOid = RelationGetRelid(t->rel);
    t->upd->tts_tableOid = RelationGetRelid(t->rel);
    t->pending = static_cast<TupleTableSlot**>(palloc0(sizeof(TupleTableSlot*) * kMaxPending));
    MemoryContextSwitchTo(old);
    return t;
}

// The target for a partition the executor routed a row to: made the first time, with the
// partition's index that belongs to the arbiter (given the unique-check support that
// ExecCheckIndexConstraints needs: the executor opened the indexes for plain inserts).
DirectTarget* partition_target(DirectApply::State* s, ResultRelInfo* rri) {
    if (rri == s->last_rri)
        return s->last;
    bool found;
    auto* entry = static_cast<std::pair<ResultRelInfo*, DirectTarget*>*>(
        hash_search(s->partitions, &rri, HASH_ENTER, &found));
    if (!found) {
        entry->second = nullptr;
        // Checked again now that the partition is open and locked (ROW EXCLUSIVE): the check
        // before the merge locked partitions for reading only, which lets a trigger or a
        // foreign key be added to one, or a table with triggers be attached, meanwhile. A
        // partition the direct path cannot write sends this chunk and the rest to the
        // statement (55000 is redone by statement; see MergeRun::flush_direct_chunk).
        if (const char* why = relation_refusal(rri->ri_RelationDesc))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("pg_ingest: partition \"%s\" cannot be applied directly: %s",
                                   RelationGetRelationName(rri->ri_RelationDesc), why)));
        Oid arbiter = InvalidOid;
        for (int i = 0; i < rri->ri_NumIndices && !OidIsValid(arbiter); i++) {
            Relation idx = rri->ri_IndexRelationDescs[i];
            List* ancestors = get_partition_ancestors(RelationGetRelid(idx));
            if (list_member_oid(ancestors, s->conflict->index)) {
                arbiter = RelationGetRelid(idx);
                IndexInfo* info = rri->ri_IndexRelationInfo[i];
                if (info->ii_Unique && info->ii_UniqueOps == NULL) {
                    MemoryContext old = MemoryContextSwitchTo(s->estate->es_query_cxt);
                    BuildSpeculativeIndexInfo(idx, info);
                    MemoryContextSwitchTo(old);
                }
            }
            list_free(ancestors);
        }
        if (!OidIsValid(arbiter))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("pg_ingest: partition \"%s\" has no index of the conflict "
                                   "target",
                                   RelationGetRelationName(rri->ri_RelationDesc))));
        // As for the target: an update needs a replica identity where updates are published.
        if (s->updates)
            CheckCmdReplicaIdentity(rri->ri_RelationDesc, CMD_UPDATE);
        TupleConversionMap* map = rri->ri_RootToPartitionMap;
        entry->second = make_target(s, rri, arbiter, map ? map->attrMap : nullptr);
    }
    s->last_rri = rri;
    s->last = entry->second;
    return s->last;
}

// The partition of s->ins (as the target's row), found by the executor's tuple routing, which
// opens and locks it the first time under the merge's resource owner (see State).
ResultRelInfo* route(DirectApply::State* s) {
    ResourceOwner saved = CurrentResourceOwner;
    ResultRelInfo* rri = nullptr;
    CurrentResourceOwner = s->owner;
    PG_TRY();
    { rri = ExecFindPartition(s->mtstate, s->rri, s->proute, s->ins, s->estate); }
    PG_FINALLY();
    { CurrentResourceOwner = saved; }
    PG_END_TRY();
    return rri;
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
        s->conflict = &res.target;
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

        // Defaults of the columns not loaded, as INSERT evaluates them for every proposed row
        // (identity columns draw from their sequence even when the row ends as an update); the
        // target's own, also for rows routed to a partition.
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

        if (s->rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE) {
            // As COPY sets up its tuple routing: a ModifyTableState without a plan.
            s->mtstate = makeNode(ModifyTableState);
            s->mtstate->ps.plan = NULL;
            s->mtstate->ps.state = s->estate;
            s->mtstate->operation = CMD_INSERT;
            s->mtstate->mt_nrels = 1;
            s->mtstate->resultRelInfo = s->rri;
            s->mtstate->rootResultRelInfo = s->rri;
            s->proute = ExecSetupPartitionTupleRouting(s->estate, s->rel);
            s->owner = CurrentResourceOwner;
            HASHCTL ctl;
            memset(&ctl, 0, sizeof(ctl));
            ctl.keysize = sizeof(ResultRelInfo*);
            ctl.entrysize = sizeof(std::pair<ResultRelInfo*, DirectTarget*>);
            ctl.hcxt = cxt;
            s->partitions = hash_create("pg_ingest direct apply partitions", 16, &ctl,
                                        HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
            s->ins = MakeSingleTupleTableSlot(CreateTupleDescCopyConstr(rd), &TTSOpsVirtual);
        } else {
            ExecOpenIndices(s->rri, true);  // true: the arbiter gets its unique-check support
            s->only = make_target(s, s->rri, res.target.index, nullptr);
            s->ins = s->only->ins;
        }
        s->src = MakeSingleTupleTableSlot(chunk_desc, &TTSOpsMinimalTuple);
        MemoryContextSwitchTo(old);
        return s;
    });
}

namespace {

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

// Ordered probe (see DirectTarget), run inside pg_call like everything below.

// Reads the batch: up to batch_size entries (or `size`, when given) from the first >= key on.
// The scan ends here, its pins with it.
void read_batch(DirectTarget* t, Datum key, int size = 0) {
    if (size == 0 && t->batch_valid) {
        // Adapt: the rows used most of the last batch, or hardly any of it.
        if (t->batch_pos >= t->batch_len / 2 && t->batch_len == t->batch_size)
            t->batch_size = std::min(t->batch_size * 2, kMaxBatch);
        else if (t->batch_pos <= 1)
            t->batch_size = std::max(t->batch_size / 2, kMinBatch);
    }
    t->batches++;
    MemoryContextReset(t->batch_cxt);
    MemoryContext old = MemoryContextSwitchTo(t->batch_cxt);
    ScanKeyData sk;
    ScanKeyEntryInitialize(&sk, 0, 1, BTGreaterEqualStrategyNumber, InvalidOid, t->key_collation,
                           t->key_ge, key);
    IndexScanDesc scan = index_beginscan(t->rel, t->index, &t->dirty, 1, 0);
    scan->xs_want_itup = true;  // the entries' keys, without the heap
    index_rescan(scan, &sk, 1, NULL, 0);
    int n = 0;
    const int want = size > 0 ? size : t->batch_size;
    while (n < want && index_getnext_tid(scan, ForwardScanDirection)) {
        bool isnull;
        const Datum k = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull);
        Assert(!isnull);  // ">=" passes no NULL
        t->batch_keys[n] = datumCopy(k, t->key_byval, t->key_len);
        t->batch_tids[n] = scan->xs_heaptid;
        n++;
    }
    index_endscan(scan);
    MemoryContextSwitchTo(old);
    t->batch_len = n;
    t->batch_pos = 0;
    t->batch_to_end = n < want;
    t->batch_valid = true;
}

enum class Probe { none, found, unsure };

// Looks for a row holding `key` among the batch's entries, reading a new batch when the key
// lies beyond it. found: the row is in t->old; unsure: too many dead entries with this key to
// tell from one batch.
Probe probe_batch(DirectTarget* t, Datum key) {
    auto cmp = [&](int i) {
        return ApplySortComparator(t->batch_keys[i], false, key, false, &t->key_order);
    };
    if (!t->batch_valid || (t->batch_len > 0 && cmp(t->batch_len - 1) < 0 && !t->batch_to_end))
        read_batch(t, key);
    while (t->batch_pos < t->batch_len && cmp(t->batch_pos) < 0)
        t->batch_pos++;
    bool reread = false;
    for (;;) {
        for (int i = t->batch_pos; i < t->batch_len && cmp(i) == 0; i++) {
            bool call_again = false, all_dead = false;
            if (!table_index_fetch_tuple(t->heap, &t->batch_tids[i], &t->dirty, t->old, &call_again,
                                         &all_dead))
                continue;  // no version visible behind this entry; a later entry may have one
            bool isnull;
            const Datum held = slot_getattr(t->old, t->key_att, &isnull);
            if (!isnull && ApplySortComparator(held, false, key, false, &t->key_order) == 0)
                return Probe::found;
            ExecClearTuple(t->old);  // the TID was reused by another row since
        }
        // The entries with this key may go on past the batch: read from the key on, once.
        int last = t->batch_len - 1;
        if (t->batch_to_end || last < t->batch_pos || cmp(last) > 0)
            return Probe::none;
        // A batch that starts with this key and holds nothing else would only be read again.
        if (reread || t->batch_pos == 0)
            return Probe::unsure;
        reread = true;
        read_batch(t, key, kMaxBatch);
    }
}

// Finds the row holding the proposed row's key: found with its version in t->old and its TID in
// *tid, none when there is none, unsure when the caller must probe per row. Waits, as
// ExecCheckIndexConstraints does, for a transaction that is inserting or deleting it.
Probe probe_ordered(DirectTarget* t, ItemPointer tid) {
    bool isnull;
    const Datum key = slot_getattr(t->ins, t->key_att, &isnull);
    if (isnull)
        return Probe::none;  // a NULL key never conflicts
    for (;;) {
        const Probe p = probe_batch(t, key);
        table_index_fetch_reset(t->heap);  // t->old keeps its own pin
        if (p == Probe::unsure)
            t->batch_valid = false;
        if (p != Probe::found)
            return p;
        const TransactionId xwait =
            TransactionIdIsValid(t->dirty.xmin) ? t->dirty.xmin : t->dirty.xmax;
        if (TransactionIdIsValid(xwait)) {
            ItemPointerData ctid = t->old->tts_tid;
            const uint32 token = t->dirty.speculativeToken;
            ExecClearTuple(t->old);
            if (token)
                SpeculativeInsertionWait(xwait, token);
            else
                XactLockTableWait(xwait, t->rel, &ctid, XLTW_InsertIndex);
            t->batch_valid = false;  // read again what the other transaction left
            continue;
        }
        *tid = t->old->tts_tid;
        return Probe::found;
    }
}

// The index entries of t->upd, the new version of an existing row that apply_row updated
// (not a HOT update). Its arbiter entry is inserted without a uniqueness check: it holds the key
// of the row version just replaced, which no update changes (key columns are never updated,
// and the direct path runs no triggers). That version stays live to everyone else until this
// transaction ends, so any other inserter of the key finds it and waits for us, and no other
// row with the key can exist. The check would only find that version again and fetch its row.
// No "unchanged" hint either (update=false), for any index: it asks nbtree for a bottom-up
// deletion pass before a full leaf page is split, which looks for versions dead to everyone,
// but the versions this merge replaces are its own, alive until it commits, so the pass costs
// heap reads and finds nothing; the page is deduplicated instead (or split), as for an insert.
// VACUUM removes the old versions' entries later, as after any update.
void insert_update_entries(DirectTarget* t, EState* estate) {
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
            insert_update_entries(t, estate);
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

// The slots are not dropped one by one: between calls of apply() they hold no buffer pin (a
// successful call clears them, a rolled-back one took its pins along) and no descriptor
// reference (their descriptors are not reference-counted), so the memory context takes them.
// The partitions (and the executor's slots for them) were opened under s->owner.
void DirectApply::close() {
    State* s = m_state;
    m_state = nullptr;
    if (!s)
        return;
    pg_call([&] {
        if (s->proute) {
            ResourceOwner saved = CurrentResourceOwner;
            CurrentResourceOwner = s->owner;
            PG_TRY();
            {
                ExecCleanupTupleRouting(s->mtstate, s->proute);
                ExecResetTupleTable(s->estate->es_tupleTable, false);
                FreeExecutorState(s->estate);
            }
            PG_FINALLY();
            { CurrentResourceOwner = saved; }
            PG_END_TRY();
        } else {
            ExecCloseIndices(s->rri);
            FreeExecutorState(s->estate);
        }
        MemoryContextDelete(s->cxt);
    });
}

}  // namespace pg_ingest
