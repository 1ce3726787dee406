// The direct apply path's set-up: whether a merge may take it, and the executor state it
// writes through (the target, or a partitioned target's partitions as rows reach them).
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

#include "merge_sql.hpp"

namespace pg_ingest {

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

using direct::init_ordered_probe;

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

}  // namespace

namespace direct {

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

}  // namespace direct

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
