// Checks of superseded rows (see merge_superseded.hpp).
#include "merge_superseded.hpp"

#include "boundary.hpp"

extern "C" {
#include "access/tupdesc.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include <string>

namespace pg_ingest {

struct SupersededCheck::State {
    MemoryContext cxt;
    Relation rel;
    EState* estate;
    ResultRelInfo* rri;
    TupleTableSlot* proposed;  // the target's layout
    int natts;
    int* source_of;        // per target attribute: its source column, or -1
    ExprState** defaults;  // per target attribute not loaded: its default, or nullptr
    const char* what;      // "COPY", for the context line
    int64_t line;          // of the row being checked
};

namespace {

void context_callback(void* arg) {
    const auto* s = static_cast<const SupersededCheck::State*>(arg);
    errcontext(
        "%s into %s, line %lld: a row superseded by another row of its key, checked as "
        "INSERT checks it",
        s->what, RelationGetRelationName(s->rel), static_cast<long long>(s->line));
}

}  // namespace

SupersededCheck::SupersededCheck(const MergeSpec& spec, MemoryContext parent) {
    if (spec.mode != ConflictMode::upsert && spec.mode != ConflictMode::ignore)
        return;
    TupleDesc rd = RelationGetDescr(spec.target);
    if (!rd->constr || (!rd->constr->has_not_null && rd->constr->num_check == 0))
        return;
    m_state = pg_call([&] {
        MemoryContext cxt =
            AllocSetContextCreate(parent, "pg_ingest superseded", ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        State* s = static_cast<State*>(palloc0(sizeof(State)));
        s->cxt = cxt;
        s->rel = spec.target;
        s->natts = rd->natts;
        s->what = pstrdup(spec.what.c_str());
        s->source_of = static_cast<int*>(palloc(sizeof(int) * s->natts));
        s->defaults = static_cast<ExprState**>(palloc0(sizeof(ExprState*) * s->natts));

        // As the statement's range table entry says: which columns "Failing row contains" shows.
        RangeTblEntry* rte = makeNode(RangeTblEntry);
        rte->rtekind = RTE_RELATION;
        rte->relid = RelationGetRelid(s->rel);
        rte->relkind = s->rel->rd_rel->relkind;
        rte->rellockmode = RowExclusiveLock;
        rte->requiredPerms = ACL_INSERT;
        for (int i = 0; i < s->natts; i++)
            s->source_of[i] = -1;
        for (size_t p = 0; p < spec.columns.size(); p++) {
            s->source_of[spec.columns[p] - 1] = static_cast<int>(p);
            rte->insertedCols = bms_add_member(
                rte->insertedCols, spec.columns[p] - FirstLowInvalidHeapAttributeNumber);
        }
        s->estate = CreateExecutorState();
        ExecInitRangeTable(s->estate, list_make1(rte));
        s->rri = makeNode(ResultRelInfo);
        InitResultRelInfo(s->rri, s->rel, 1, NULL, 0);

        MemoryContext q = MemoryContextSwitchTo(s->estate->es_query_cxt);
        for (int i = 0; i < s->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(rd, i);
            if (att->attisdropped || att->attgenerated || s->source_of[i] >= 0)
                continue;
            Expr* def = reinterpret_cast<Expr*>(build_column_default(s->rel, i + 1));
            if (def)
                s->defaults[i] = ExecInitExpr(expression_planner(def), NULL);
        }
        MemoryContextSwitchTo(q);
        s->proposed = MakeSingleTupleTableSlot(CreateTupleDescCopy(rd), &TTSOpsVirtual);
        MemoryContextSwitchTo(old);
        return s;
    });
}

void SupersededCheck::check(TupleTableSlot* row, int64_t line) {
    State* s = m_state;
    if (!s)
        return;
    pg_call([&] {
        ErrorContextCallback cb;
        s->line = line;
        cb.callback = context_callback;
        cb.arg = s;
        cb.previous = error_context_stack;
        error_context_stack = &cb;

        ExprContext* econtext = GetPerTupleExprContext(s->estate);
        MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(s->estate));
        slot_getallattrs(row);
        TupleTableSlot* p = s->proposed;
        ExecClearTuple(p);
        for (int i = 0; i < s->natts; i++) {
            const int src = s->source_of[i];
            if (src >= 0) {
                p->tts_values[i] = row->tts_values[src];
                p->tts_isnull[i] = row->tts_isnull[src];
            } else if (s->defaults[i]) {
                p->tts_values[i] = ExecEvalExpr(s->defaults[i], econtext, &p->tts_isnull[i]);
            } else {
                p->tts_values[i] = (Datum)0;
                p->tts_isnull[i] = true;
            }
        }
        ExecStoreVirtualTuple(p);
        if (RelationGetDescr(s->rel)->constr->has_generated_stored)
            ExecComputeStoredGenerated(s->rri, s->estate, p, CMD_INSERT);
        ExecConstraints(s->rri, p, s->estate);
        MemoryContextSwitchTo(old);
        ResetPerTupleExprContext(s->estate);
        error_context_stack = cb.previous;
    });
}

}  // namespace pg_ingest
