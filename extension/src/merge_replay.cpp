// The merge engine under ON_ERROR 'ignore': a chunk that failed on a bad row is applied again
// one row at a time, each in a subtransaction, and the rows that fail are reported as rejects.
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

#include <algorithm>

namespace pg_ingest::merge_detail {

// A chunk failed on a bad row: apply its rows one by one, each in a subtransaction, and
// report the ones that fail. A key group whose combined row fails is applied row by row in
// input order, so its good rows load as they would one at a time.
void MergeRun::check_superseded(TupleTableSlot* row, bool applied_mix) {
    const int64_t line = pg_call([&] {
        bool isnull;
        return DatumGetInt64(slot_getattr(row, static_cast<AttrNumber>(m_ncols + 1), &isnull));
    });
    if (!m_spec.ignore_errors) {
        m_superseded->check(row, line, applied_mix);
        return;
    }
    if (m_group_replay)
        return;  // the replay checks every row of the group anyway
    try {
        // No write in it, so no subtransaction id is used up.
        with_subtransaction([&] { m_superseded->check(row, line, applied_mix); });
    } catch (const PgError& e) {
        if (!rejectable(e))
            throw;
        e.release();
        m_group_replay = true;
    }
}

void MergeRun::retry_rows_one_by_one() {
    std::vector<Kept> rows = std::move(m_kept);
    m_kept.clear();
    TupleTableSlot* slot = nullptr;
    MemoryContext row_cxt = nullptr;
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_chunk_cxt);
        slot = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsMinimalTuple);
        row_cxt =
            AllocSetContextCreate(m_chunk_cxt, "pg_ingest merge kept row", ALLOCSET_DEFAULT_SIZES);
        MemoryContextSwitchTo(old);
    });
    for (const Kept& k : rows) {
        MinimalTuple tuple = nullptr;
        int64_t seq = 0;
        const char* raw = nullptr;
        size_t raw_len = 0;
        pg_call([&] {
            MemoryContextReset(row_cxt);
            if (!tuplestore_gettupleslot(m_kept_rows, true, false, slot))
                elog(ERROR, "pg_ingest: a kept row of the chunk is missing");
            chunk_row_from(slot, k.group_rows, row_cxt, tuple, seq, raw, raw_len);
        });
        const std::string raw_line(raw ? raw : "", raw_len);
        if (k.replay) {
            replay_members(k.members, slot, row_cxt);
            continue;
        }
        if (k.members == 0) {
            // A rejected winner: the rows it superseded were never applied either.
            if (!apply_one(tuple, k.group_rows, seq, raw_line, true))
                m_counts.skipped += k.group_rows - 1;
            continue;
        }
        if (apply_one(tuple, k.group_rows, seq, raw_line, false)) {
            pg_call([&] {
                if (!tuplestore_skiptuples(m_members, k.members, true))
                    elog(ERROR, "pg_ingest: the kept rows of a key group are missing");
            });
            continue;
        }
        replay_members(k.members, slot, row_cxt);
    }
    pg_call([&] {
        ExecDropSingleTupleTableSlot(slot);
        MemoryContextDelete(row_cxt);
    });
}

// A row in the sort's format as a chunk row of `group_rows` rows (in `cxt`), with its line
// number and raw line (pointing into `row` or `cxt`).
void MergeRun::chunk_row_from(TupleTableSlot* row, int64_t group_rows, MemoryContext cxt,
                              MinimalTuple& tuple, int64_t& seq, const char*& raw,
                              size_t& raw_len) {
    MemoryContext old = MemoryContextSwitchTo(cxt);
    slot_getallattrs(row);
    Datum values[MaxTupleAttributeNumber];
    bool nulls[MaxTupleAttributeNumber];
    for (int i = 0; i < m_ncols; i++) {
        values[i] = row->tts_values[i];
        nulls[i] = row->tts_isnull[i];
    }
    seq = DatumGetInt64(row->tts_values[m_ncols]);
    values[m_ncols] = Int64GetDatum(group_rows);
    nulls[m_ncols] = false;
    values[m_ncols + 1] = Int64GetDatum(seq);
    nulls[m_ncols + 1] = false;
    tuple = heap_form_minimal_tuple(m_chunk_desc, values, nulls);
    raw = nullptr;
    raw_len = 0;
    if (!row->tts_isnull[m_ncols + 1]) {
        text* t = DatumGetTextPP(row->tts_values[m_ncols + 1]);
        raw = VARDATA_ANY(t);
        raw_len = VARSIZE_ANY_EXHDR(t);
    }
    MemoryContextSwitchTo(old);
}

// Applies the next `n` rows of m_members (a group whose combined row failed) one at a time in
// input order. The sort gave them newest first when the last row wins: a sort by line number
// (on disk past work_mem, as the group may be large) puts them in input order. `slot` (in the
// sort's format) and `row_cxt` (reset per row) are the caller's, free to reuse.
void MergeRun::replay_members(int64_t n, TupleTableSlot* slot, MemoryContext row_cxt) {
    Tuplesortstate* by_line = pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_chunk_cxt);
        AttrNumber seq_col = static_cast<AttrNumber>(m_ncols + 1);
        Oid lt = Int8LessOperator;
        Oid collation = InvalidOid;
        bool nulls_first = false;
        Tuplesortstate* sort = tuplesort_begin_heap(m_sort_desc, 1, &seq_col, &lt, &collation,
                                                    &nulls_first, work_mem, NULL, TUPLESORT_NONE);
        for (int64_t i = 0; i < n; i++) {
            if (!tuplestore_gettupleslot(m_members, true, false, slot))
                elog(ERROR, "pg_ingest: the kept rows of a key group are missing");
            tuplesort_puttupleslot(sort, slot);
        }
        tuplesort_performsort(sort);
        MemoryContextSwitchTo(old);
        return sort;
    });
    for (;;) {
        MinimalTuple tuple = nullptr;
        int64_t seq = 0;
        const char* raw = nullptr;
        size_t raw_len = 0;
        const bool more = pg_call([&] {
            MemoryContextReset(row_cxt);
            if (!tuplesort_gettupleslot(by_line, true, false, slot, NULL))
                return false;
            chunk_row_from(slot, 1, row_cxt, tuple, seq, raw, raw_len);
            return true;
        });
        if (!more)
            break;
        (void)apply_one(tuple, 1, seq, std::string(raw ? raw : "", raw_len), true);
    }
    // On an error above the transaction ends, which closes the sort's files.
    pg_call([&] {
        ExecClearTuple(slot);  // it may point into the sort's memory
        tuplesort_end(by_line);
    });
}

// Applies one chunk row in a subtransaction. False when it fails on bad data; then, if
// `report`, it is counted and reported as a reject.
bool MergeRun::apply_one(MinimalTuple tuple, int64_t group_rows, int64_t seq,
                         const std::string& raw, bool report) {
    pg_call([&] {
        // What the last call left (a store a failed statement never freed) goes: a group
        // replayed row by row must not grow memory with its size.
        if (m_apply_cxt)
            MemoryContextReset(m_apply_cxt);
        else
            m_apply_cxt = AllocSetContextCreate(m_chunk_cxt, "pg_ingest merge apply one",
                                                ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(m_apply_cxt);
        m_chunk = tuplestore_begin_heap(false, false, work_mem);
        tuplestore_puttuple(m_chunk, heap_tuple_from_minimal_tuple(tuple));
        MemoryContextSwitchTo(old);
    });
    try {
        ChunkResult r{0, 0};
        with_subtransaction([&] { r = execute_chunk(1); });
        count(r, 1, group_rows);
        return true;
    } catch (const PgError& e) {
        if (!rejectable(e))
            throw;
        // A store the statement never took (it failed first) is closed here: one row bigger
        // than work_mem spilled to a temp file. Its memory goes with m_apply_cxt.
        if (m_chunk)
            pg_call([&] { tuplestore_end(m_chunk); });
        m_chunk = nullptr;
        if (!report) {
            e.release();
            return false;
        }
        m_counts.rejected += 1;
        RejectedRow rej;
        rej.line_number = seq;
        rej.raw_line = raw;
        rej.sqlstate = unpack_sql_state(e.sqlerrcode());
        rej.message = e.what();
        if (e.data()->detail)
            rej.message += std::string(" (") + e.data()->detail + ")";
        e.release();
        m_on_reject(std::move(rej));
        return false;
    }
}

}  // namespace pg_ingest::merge_detail
