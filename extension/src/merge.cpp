// The merge engine (see merge.hpp for the design).
#include "merge_run.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_collation.h"
#include "access/stratnum.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/sortsupport.h"
#include "utils/syscache.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"
#include "utils/rel.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "storage/proc.h"
#include "catalog/pg_namespace.h"
}

#include <algorithm>
#include <memory>

namespace pg_ingest {

const char* conflict_mode_name(ConflictMode m) {
    switch (m) {
        case ConflictMode::upsert:
            return "upsert";
        case ConflictMode::update:
            return "update";
        case ConflictMode::ignore:
            return "ignore";
        case ConflictMode::strict:
            return "strict";
        case ConflictMode::none:
            return "none";
    }
    return "?";
}

ConflictMode parse_conflict_mode(const std::string& s, bool allow_none) {
    for (ConflictMode m :
         {ConflictMode::upsert, ConflictMode::update, ConflictMode::ignore, ConflictMode::strict})
        if (pg_strcasecmp(s.c_str(), conflict_mode_name(m)) == 0)
            return m;
    if (allow_none && pg_strcasecmp(s.c_str(), "none") == 0)
        return ConflictMode::none;
    if (allow_none)
        raise(ERRCODE_INVALID_PARAMETER_VALUE, format("unknown conflict mode \"%s\"", s.c_str()),
              {}, "Use one of 'none', 'upsert', 'update', 'ignore' or 'strict'.");
    raise(ERRCODE_INVALID_PARAMETER_VALUE, format("unknown conflict mode \"%s\"", s.c_str()), {},
          "Use one of 'upsert', 'update', 'ignore' or 'strict'.");
}

void validate_merge(const MergeSpec& spec) {
    (void)resolve_merge(spec);
}

std::string context_into(const MergeSpec& spec) {
    return format("%s into %s", (spec.context.empty() ? spec.what : spec.context).c_str(),
                  RelationGetRelationName(spec.target));
}

std::string context_position(const MergeSpec& spec, int64_t number) {
    if (number <= 0 || spec.position.empty())
        return {};
    return format(", %s %lld", spec.position.c_str(), static_cast<long long>(number));
}

namespace merge_detail {

std::vector<MergeRun*> g_active;
int64_t g_conflicts = 0;

namespace {

extern "C" {
// No merge outlives its statement, so none is running when a top-level transaction ends. A
// MergeRun whose destructor an error skipped would otherwise stay in g_active, where
// ingest._merge_rows() could reach it. clear() does not allocate or throw.
static void merge_xact_callback(XactEvent event, void*) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
        g_active.clear();
}
}

}  // namespace

void MergeRun::build_descriptors() {
    Relation rel = m_spec.target;
    m_ncols = static_cast<int>(m_spec.columns.size());
    for (int i = 0; i < m_ncols; i++)
        if (std::find(m_res.update_columns.begin(), m_res.update_columns.end(),
                      m_spec.columns[i]) == m_res.update_columns.end())
            m_first_positions.push_back(i);
    const int extra = keeps_raw() ? 2 : 1;
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        TupleDesc rd = RelationGetDescr(rel);
        m_sort_desc = CreateTemplateTupleDesc(m_ncols + extra);
        m_chunk_desc = CreateTemplateTupleDesc(m_ncols + 2);
        for (int i = 0; i < m_ncols; i++) {
            Form_pg_attribute att = TupleDescAttr(rd, m_spec.columns[i] - 1);
            for (TupleDesc d : {m_sort_desc, m_chunk_desc}) {
                TupleDescInitEntry(d, i + 1, NameStr(att->attname), att->atttypid, att->atttypmod,
                                   0);
                TupleDescInitEntryCollation(d, i + 1, att->attcollation);
            }
        }
        TupleDescInitEntry(m_sort_desc, m_ncols + 1, "seq", INT8OID, -1, 0);
        if (keeps_raw())
            TupleDescInitEntry(m_sort_desc, m_ncols + 2, "raw", TEXTOID, -1, 0);
        TupleDescInitEntry(m_chunk_desc, m_ncols + 1, "n", INT8OID, -1, 0);
        // The winner's line, for the line an error while applying the row names.
        TupleDescInitEntry(m_chunk_desc, m_ncols + 2, "seq", INT8OID, -1, 0);
        MemoryContextSwitchTo(old);
    });
}

// Phase 1: every input row into the sort, keyed on (conflict key, input position).
void MergeRun::load(RowSource& source) {
    const ConflictTarget& t = m_res.target;
    const int nkeys = static_cast<int>(t.keys.size()) + 1;
    std::vector<AttrNumber> attnums;
    std::vector<Oid> ops, colls;
    for (size_t i = 0; i < t.keys.size(); i++) {
        attnums.push_back(static_cast<AttrNumber>(m_res.key_positions[i] + 1));
        ops.push_back(t.lt_operators[i]);
        colls.push_back(t.collations[i]);
    }
    attnums.push_back(static_cast<AttrNumber>(m_ncols + 1));
    ops.push_back(pg_call([&] {
        return get_opfamily_member(INTEGER_BTREE_FAM_OID, INT8OID, INT8OID,
                                   last_wins() ? BTGreaterStrategyNumber : BTLessStrategyNumber);
    }));
    colls.push_back(InvalidOid);
    std::unique_ptr<bool[]> nf(new bool[nkeys]());

    TupleTableSlot* slot = nullptr;
    TupleTableSlot* formed_slot = nullptr;
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        m_sort = tuplesort_begin_heap(m_sort_desc, nkeys, attnums.data(), ops.data(), colls.data(),
                                      nf.get(), work_mem, NULL, TUPLESORT_NONE);
        slot = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsVirtual);
        formed_slot = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsMinimalTuple);
        MemoryContextSwitchTo(old);
    });

    Datum* values = slot->tts_values;
    bool* isnull = slot->tts_isnull;
    SourceRow row;
    // Rows formed by the source match the sort's layout only without the raw-line column.
    row.accepts_formed = !keeps_raw();
    for (;;) {
        row.formed = nullptr;
        MemoryContext old = MemoryContextSwitchTo(m_row_cxt);
        bool more;
        try {
            more = source.next(row);
        } catch (...) {
            MemoryContextSwitchTo(old);
            throw;
        }
        MemoryContextSwitchTo(old);
        if (!more)
            break;
        if (row.formed) {
            pg_call([&] {
                MemoryContext o = MemoryContextSwitchTo(m_row_cxt);
                ExecStoreMinimalTuple(row.formed, formed_slot, false);
                tuplesort_puttupleslot(m_sort, formed_slot);  // copies the tuple
                m_loaded_rows++;
                MemoryContextSwitchTo(o);
                MemoryContextReset(m_row_cxt);
                CHECK_FOR_INTERRUPTS();
            });
            continue;
        }
        pg_call([&] {
            MemoryContext o = MemoryContextSwitchTo(m_row_cxt);
            ExecClearTuple(slot);
            for (int i = 0; i < m_ncols; i++) {
                values[i] = row.values[i];
                isnull[i] = row.nulls[i];
            }
            values[m_ncols] = Int64GetDatum(row.line_number);
            isnull[m_ncols] = false;
            if (keeps_raw()) {
                isnull[m_ncols + 1] = row.raw == nullptr;
                if (row.raw)
                    values[m_ncols + 1] =
                        PointerGetDatum(cstring_to_text_with_len(row.raw, row.raw_len));
            }
            ExecStoreVirtualTuple(slot);
            tuplesort_puttupleslot(m_sort, slot);  // copies the row
            m_loaded_rows++;
            MemoryContextSwitchTo(o);
            MemoryContextReset(m_row_cxt);
            CHECK_FOR_INTERRUPTS();
        });
    }
    pg_call([&] {
        ExecDropSingleTupleTableSlot(slot);
        ExecDropSingleTupleTableSlot(formed_slot);
        tuplesort_performsort(m_sort);
    });
}

// Phase 2 and 3: cut the sorted stream into key groups, apply the winners chunk by chunk.
void MergeRun::apply_all() {
    const ConflictTarget& t = m_res.target;
    const size_t nkeys = t.keys.size();
    std::vector<SortSupportData> ssup(nkeys);
    TupleTableSlot* cur = nullptr;
    TupleTableSlot* leader = nullptr;
    // With last-wins the winner sorts first in its group, and the group's first row in input
    // order sorts last. Applied one at a time, the first row inserts and later ones only
    // overwrite the update columns, so every other column (keys included: "1.0" then "1.00"
    // leaves "1.0") keeps the first row's value.
    TupleTableSlot* first = nullptr;
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        for (size_t i = 0; i < nkeys; i++) {
            memset(&ssup[i], 0, sizeof(SortSupportData));
            ssup[i].ssup_cxt = m_cxt;
            ssup[i].ssup_collation = t.collations[i];
            ssup[i].ssup_nulls_first = false;
            PrepareSortSupportFromOrderingOp(t.lt_operators[i], &ssup[i]);
        }
        cur = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsMinimalTuple);
        leader = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsMinimalTuple);
        first = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsMinimalTuple);
        MemoryContextSwitchTo(old);
    });

    m_superseded = std::make_unique<SupersededCheck>(m_spec, t.keys, m_cxt);
    begin_apply();

    bool have_leader = false;
    int64_t group_rows = 0;
    for (;;) {
        bool more = pg_call([&] {
            CHECK_FOR_INTERRUPTS();
            return tuplesort_gettupleslot(m_sort, true, false, cur, NULL);
        });
        if (more && have_leader && dedupes()) {
            // Same key as the group's winner? Key columns that are NULL never match (unless
            // the index says NULLS NOT DISTINCT), as in the unique index itself.
            bool same = pg_call([&] {
                for (size_t i = 0; i < nkeys; i++) {
                    const AttrNumber pos = static_cast<AttrNumber>(m_res.key_positions[i] + 1);
                    bool n1, n2;
                    Datum d1 = slot_getattr(leader, pos, &n1);
                    Datum d2 = slot_getattr(cur, pos, &n2);
                    if (n1 || n2) {
                        if (n1 && n2 && t.nulls_not_distinct)
                            continue;
                        return false;
                    }
                    if (ApplySortComparator(d1, false, d2, false, &ssup[i]) != 0)
                        return false;
                }
                return true;
            });
            if (same) {
                if (m_superseded->active())
                    check_superseded(cur);
                group_rows++;
                if (last_wins())
                    pg_call([&] { ExecCopySlot(first, cur); });
                if (keeps_groups()) {
                    if (m_group_members == 0)
                        add_member(leader);  // only groups of several rows are kept whole
                    add_member(cur);
                }
                continue;
            }
        }
        if (have_leader) {
            const bool mixed = group_rows > 1 && last_wins();
            // A row applied with update columns only is the first row's other columns with the
            // last row's update columns: the last row itself, which INSERT would check before
            // its DO UPDATE, is then checked as the superseded rows are.
            if (mixed && m_first_positions.size() > m_res.key_positions.size() &&
                m_superseded->active())
                check_superseded(leader, true);
            add_to_chunk(leader, mixed ? first : nullptr, group_rows);
        }
        if (!more)
            break;
        pg_call([&] { ExecCopySlot(leader, cur); });
        have_leader = true;
        group_rows = 1;
    }
    flush_chunk();
    end_apply();

    pg_call([&] {
        ExecDropSingleTupleTableSlot(cur);
        ExecDropSingleTupleTableSlot(leader);
        ExecDropSingleTupleTableSlot(first);
    });
}

// Each direct chunk is a subtransaction (see flush_direct_chunk), and a backend keeps at most
// 64 subtransaction ids in shared memory before every other backend's snapshots get slower.
// So direct chunks grow with the input to stay below that, with room for the caller's own.
constexpr int64_t kMaxDirectChunks = 48;

// Triggers that see a statement rather than a row: statement-level ones, and row or statement
// ones with transition tables (filled per statement). INSERT ... ON CONFLICT fires the INSERT
// and UPDATE ones of the target it names, not of its partitions.
// Only triggers that will fire: not disabled, and not suppressed by session_replication_role
// (as the executor decides in trigger.c).
bool has_statement_triggers(Relation rel) {
    const TriggerDesc* t = rel->trigdesc;
    if (!t)
        return false;
    const bool replica = SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA;
    for (int i = 0; i < t->numtriggers; i++) {
        const Trigger& trig = t->triggers[i];
        const bool fires = trig.tgenabled == TRIGGER_FIRES_ALWAYS ||
                           (replica ? trig.tgenabled == TRIGGER_FIRES_ON_REPLICA
                                    : trig.tgenabled == TRIGGER_FIRES_ON_ORIGIN);
        if (!fires)
            continue;
        const bool on_write = TRIGGER_FOR_INSERT(trig.tgtype) || TRIGGER_FOR_UPDATE(trig.tgtype);
        if (on_write && (!TRIGGER_FOR_ROW(trig.tgtype) || trig.tgoldtable || trig.tgnewtable))
            return true;
    }
    return false;
}

void MergeRun::begin_apply() {
    m_chunk_limit = guc::merge_chunk_rows;
    m_statement_triggers = has_statement_triggers(m_spec.target);
    // One statement for all rows: its chunk is a tuplestore that spills past work_mem like any
    // other. Under ON_ERROR 'ignore' a failed chunk is redone row by row, so chunks stay small
    // there (statement triggers then fire per chunk and per redone row; README).
    if (m_statement_triggers && !m_spec.ignore_errors)
        m_chunk_limit = INT64_MAX;
    // Without rows the statement is prepared and never run: nothing of the direct path's set-up
    // (which checks what only writing needs, e.g. a replica identity) may fail an empty merge.
    if (m_try_direct && m_loaded_rows > 0) {
        m_chunk_limit = std::max<int64_t>(
            m_chunk_limit, (m_loaded_rows + kMaxDirectChunks - 1) / kMaxDirectChunks);
        m_direct = std::make_unique<DirectApply>(m_spec, m_res, m_chunk_desc);
        start_chunk();
        return;
    }
    begin_statement();
    start_chunk();
}

void MergeRun::begin_statement() {
    m_guc_nestlevel = pg_call([] { return NewGUCNestLevel(); });
    if (m_spec.mode == ConflictMode::update) {
        // Drive the update join from the sorted input so row locks are taken in key order.
        pg_call([] {
            for (const char* name : {"enable_hashjoin", "enable_mergejoin", "enable_seqscan"})
                (void)set_config_option(name, "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                                        true, 0, false);
        });
    }
    pg_call([] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "SPI_connect failed");
    });
    prepare_statement();
}

void MergeRun::end_apply() {
    pg_call([&] { end_kept(); });  // at commit an open temp file would be reported leaked
    if (m_direct) {
        m_path += "; " + m_direct->probe_note();
        m_direct->close();
        m_direct.reset();
        return;
    }
    pg_call([&] {
        SPI_finish();
        AtEOXact_GUC(true, m_guc_nestlevel);
    });
}

// Plain append: no sort and no grouping; rows go to the chunks in input order.
void MergeRun::append_all(RowSource& source) {
    begin_apply();
    SourceRow row;
    for (;;) {
        MemoryContext old = MemoryContextSwitchTo(m_row_cxt);
        bool more;
        try {
            more = source.next(row);
            if (more)
                add_row(row.values, row.nulls, 1, row.line_number, row.raw, row.raw_len);
        } catch (...) {
            MemoryContextSwitchTo(old);
            throw;
        }
        MemoryContextSwitchTo(old);
        pg_call([&] {
            MemoryContextReset(m_row_cxt);
            CHECK_FOR_INTERRUPTS();
        });
        if (!more)
            break;
    }
    flush_chunk();
    end_apply();
}

}  // namespace merge_detail

using merge_detail::g_active;
using merge_detail::g_conflicts;
using merge_detail::merge_xact_callback;
using merge_detail::MergeRun;

void install_merge_xact_callback() {
    pg_call([] { RegisterXactCallback(merge_xact_callback, nullptr); });
}

MergeCounts run_merge(const MergeSpec& spec, RowSource& source, const RejectSink& on_reject) {
    MergeRun run(spec, resolve_merge(spec), on_reject);
    return run.run(source);
}

namespace merge_internal {

bool serve_rows(int handle, FunctionCallInfo fcinfo) {
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (!rsinfo || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
        raise(ERRCODE_FEATURE_NOT_SUPPORTED,
              "set-valued function called in context that cannot accept a set");
    if (handle < 0 || handle >= static_cast<int>(g_active.size()))
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
              format("no running merge with handle %d in this session", handle),
              "ingest._merge_rows() is internal to COPY ON CONFLICT and ingest.merge().");
    g_active[handle]->serve(fcinfo);
    return true;
}

void note_conflict() {
    ++g_conflicts;
}

}  // namespace merge_internal

}  // namespace pg_ingest
