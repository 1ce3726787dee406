// Checks of superseded rows (see merge_superseded.hpp).
#include "merge_superseded.hpp"

#include "boundary.hpp"
#include "merge_sql.hpp"

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

#include <algorithm>
#include <string>

namespace pg_ingest {

struct SupersededCheck::State {
    MemoryContext cxt;
    Relation rel;
    EState* estate;
    ResultRelInfo* rri;
    TupleTableSlot* proposed;  // the target's layout
    int natts;
    int* source_of;       // per target attribute: its source column, or -1
    bool* must_not_null;  // per target attribute: loaded, NOT NULL and not a key column
    ExprState** needed;   // per attribute not loaded: its default, when a CHECK needs it
    ExprState** all;      // per attribute not loaded: its default (for the error only), or null
    bool all_built;
    int ncheck;
    ExprState** checks;        // the CHECK constraints, prepared at the first use, all or none
    const char* context_into;  // for the context line: see MergeSpec::context
    const char* position;      // MergeSpec::position, or null when rows are not numbered
    int64_t line;              // of the row being checked
    bool applied_mix;          // it is the last row of a key applied with update columns only
};

namespace {

extern "C" {
// An error context callback: plain C.
static void context_callback(void* arg) {
    const auto* s = static_cast<const SupersededCheck::State*>(arg);
    const char* what = s->applied_mix ? "the last row of its key, whose update columns are applied"
                                      : "a row superseded by another row of its key";
    if (s->position && s->line > 0)
        errcontext("%s, %s %lld (%s)", s->context_into, s->position,
                   static_cast<long long>(s->line), what);
    else
        errcontext("%s (%s)", s->context_into, what);
}
}

bool has_before_insert_row_trigger(Relation rel) {
    return rel->trigdesc && rel->trigdesc->trig_insert_before_row;
}

ExprState* default_of(Relation rel, int attnum) {
    Expr* def = reinterpret_cast<Expr*>(build_column_default(rel, attnum));
    return def ? ExecInitExpr(expression_planner(def), NULL) : nullptr;
}

// The proposed row: loaded values, and the defaults in `defaults` (NULL where there is none).
void fill(SupersededCheck::State* s, TupleTableSlot* row, ExprState** defaults) {
    ExprContext* econtext = GetPerTupleExprContext(s->estate);
    TupleTableSlot* p = s->proposed;
    ExecClearTuple(p);
    for (int i = 0; i < s->natts; i++) {
        const int src = s->source_of[i];
        if (src >= 0) {
            p->tts_values[i] = row->tts_values[src];
            p->tts_isnull[i] = row->tts_isnull[src];
        } else if (defaults[i]) {
            p->tts_values[i] = ExecEvalExpr(defaults[i], econtext, &p->tts_isnull[i]);
        } else {
            p->tts_values[i] = (Datum)0;
            p->tts_isnull[i] = true;
        }
    }
    ExecStoreVirtualTuple(p);
    if (RelationGetDescr(s->rel)->constr->has_generated_stored)
        ExecComputeStoredGenerated(s->rri, s->estate, p, CMD_INSERT);
}

}  // namespace

SupersededCheck::SupersededCheck(const MergeSpec& spec, const std::vector<AttrNumber>& keys,
                                 MemoryContext parent) {
    if (spec.mode != ConflictMode::upsert && spec.mode != ConflictMode::ignore)
        return;
    TupleDesc rd = RelationGetDescr(spec.target);
    if (!rd->constr)
        return;
    // NOT NULL on a key column cannot fail for a row that matched another row's key.
    const auto must_not_null = [&](AttrNumber a) {
        return TupleDescAttr(rd, a - 1)->attnotnull &&
               std::find(keys.begin(), keys.end(), a) == keys.end();
    };
    // Stored generated columns are computed as INSERT computes them (an expression may fail,
    // a NOT NULL on the column may not hold).
    if (rd->constr->num_check == 0 && !rd->constr->has_generated_stored &&
        std::none_of(spec.columns.begin(), spec.columns.end(), must_not_null))
        return;
    // INSERT runs BEFORE ROW INSERT triggers before its checks, and they may fill a column the
    // check would find NULL: with such a trigger on the target or a partition, nothing is checked.
    if (any_in_tree(spec.target, has_before_insert_row_trigger))
        return;
    const std::string into = context_into(spec);  // C++ allocations stay outside pg_call
    m_state = pg_call([&]() -> State* {
        MemoryContext cxt =
            AllocSetContextCreate(parent, "pg_ingest superseded", ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(cxt);
        State* s = static_cast<State*>(palloc0(sizeof(State)));
        s->cxt = cxt;
        s->rel = spec.target;
        s->natts = rd->natts;
        s->ncheck = rd->constr->num_check;
        s->context_into = pstrdup(into.c_str());
        s->position = spec.position.empty() ? nullptr : pstrdup(spec.position.c_str());
        s->source_of = static_cast<int*>(palloc(sizeof(int) * s->natts));
        s->must_not_null = static_cast<bool*>(palloc0(sizeof(bool) * s->natts));
        s->needed = static_cast<ExprState**>(palloc0(sizeof(ExprState*) * s->natts));
        s->all = static_cast<ExprState**>(palloc0(sizeof(ExprState*) * s->natts));

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
            const AttrNumber a = spec.columns[p];
            s->source_of[a - 1] = static_cast<int>(p);
            rte->insertedCols =
                bms_add_member(rte->insertedCols, a - FirstLowInvalidHeapAttributeNumber);
            s->must_not_null[a - 1] = must_not_null(a);
        }
        s->estate = CreateExecutorState();
        ExecInitRangeTable(s->estate, list_make1(rte));
        s->rri = makeNode(ResultRelInfo);
        InitResultRelInfo(s->rri, s->rel, 1, NULL, 0);

        // Defaults only of the columns a CHECK (or a generated column it may read) refers to:
        // evaluating others would draw from sequences (identity, serial) for rows that never
        // reach the table, and shift the values the applied rows get.
        if (s->ncheck > 0 || rd->constr->has_generated_stored) {
            Bitmapset* refs = NULL;
            for (int c = 0; c < s->ncheck; c++)
                pull_varattnos(static_cast<Node*>(stringToNode(rd->constr->check[c].ccbin)), 1,
                               &refs);
            if (rd->constr->has_generated_stored)
                for (int i = 0; i < s->natts; i++)
                    if (TupleDescAttr(rd, i)->attgenerated)
                        pull_varattnos(build_column_default(s->rel, i + 1), 1, &refs);
            MemoryContext q = MemoryContextSwitchTo(s->estate->es_query_cxt);
            for (int i = 0; i < s->natts; i++) {
                Form_pg_attribute att = TupleDescAttr(rd, i);
                if (att->attisdropped || att->attgenerated || s->source_of[i] >= 0 ||
                    !bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber, refs))
                    continue;
                s->needed[i] = default_of(s->rel, i + 1);
            }
            MemoryContextSwitchTo(q);
        }
        s->proposed = MakeSingleTupleTableSlot(CreateTupleDescCopy(rd), &TTSOpsVirtual);
        // A CHECK may read tableoid, as INSERT's slot gives it.
        s->proposed->tts_tableOid = RelationGetRelid(s->rel);
        MemoryContextSwitchTo(old);
        return s;
    });
}

void SupersededCheck::check(TupleTableSlot* row, int64_t line, bool applied_mix) {
    State* s = m_state;
    if (!s)
        return;
    try {
        pg_call([&] {
            // Reset first: a failed check leaves its memory (the error's row text, defaults).
            ResetPerTupleExprContext(s->estate);
            ErrorContextCallback cb;
            s->line = line;
            s->applied_mix = applied_mix;
            cb.callback = context_callback;
            cb.arg = s;
            cb.previous = error_context_stack;
            error_context_stack = &cb;
            ExprContext* econtext = GetPerTupleExprContext(s->estate);
            MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(s->estate));
            slot_getallattrs(row);
            bool ok = true;
            for (int i = 0; ok && i < s->natts; i++) {
                const int src = s->source_of[i];
                ok = !(s->must_not_null[i] && row->tts_isnull[src]);
            }
            TupleDesc rd = RelationGetDescr(s->rel);
            const bool generated = rd->constr->has_generated_stored;
            if (ok && (s->ncheck > 0 || generated)) {
                fill(s, row, s->needed);
                for (int i = 0; ok && generated && i < s->natts; i++) {
                    Form_pg_attribute att = TupleDescAttr(rd, i);
                    ok = !(att->attgenerated && att->attnotnull && s->proposed->tts_isnull[i]);
                }
            }
            if (ok && s->ncheck > 0) {
                if (!s->checks) {
                    // All or none: an error while preparing one leaves nothing half built.
                    MemoryContext q = MemoryContextSwitchTo(s->estate->es_query_cxt);
                    ConstrCheck* cc = RelationGetDescr(s->rel)->constr->check;
                    auto** checks =
                        static_cast<ExprState**>(palloc0(sizeof(ExprState*) * s->ncheck));
                    for (int c = 0; c < s->ncheck; c++)
                        checks[c] = ExecPrepareExpr(static_cast<Expr*>(stringToNode(cc[c].ccbin)),
                                                    s->estate);
                    MemoryContextSwitchTo(q);
                    s->checks = checks;
                }
                econtext->ecxt_scantuple = s->proposed;
                for (int c = 0; ok && c < s->ncheck; c++)
                    ok = ExecCheck(s->checks[c], econtext);
            }
            if (!ok) {
                // The error as INSERT raises it, on the row with every default it would get.
                if (!s->all_built) {
                    MemoryContext q = MemoryContextSwitchTo(s->estate->es_query_cxt);
                    TupleDesc rd = RelationGetDescr(s->rel);
                    for (int i = 0; i < s->natts; i++) {
                        Form_pg_attribute att = TupleDescAttr(rd, i);
                        if (!att->attisdropped && !att->attgenerated && s->source_of[i] < 0)
                            s->all[i] = s->needed[i] ? s->needed[i] : default_of(s->rel, i + 1);
                    }
                    MemoryContextSwitchTo(q);
                    s->all_built = true;
                }
                fill(s, row, s->all);
                ExecConstraints(s->rri, s->proposed, s->estate);
            }
            MemoryContextSwitchTo(old);
            error_context_stack = cb.previous;
        });
    } catch (...) {
        // Expressions the executor prepares on first use and stores before they are complete
        // (generated columns, ExecConstraints' checks) are prepared again next time.
        s->rri->ri_GeneratedExprs = nullptr;
        s->rri->ri_NumGeneratedNeeded = 0;
        s->rri->ri_ConstraintExprs = nullptr;
        throw;
    }
}

}  // namespace pg_ingest
