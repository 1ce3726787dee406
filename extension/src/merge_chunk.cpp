// The merge engine: chunks of winning rows applied by statement (INSERT ... ON CONFLICT or
// UPDATE ... FROM, reading ingest._merge_rows()) or by the direct path (merge_direct.hpp).
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

namespace {

extern "C" {
// Plain C, cannot fail: the executor that took a served chunk is shutting down normally.
static void forget_served(Datum arg) {
    *reinterpret_cast<Tuplestorestate**>(DatumGetPointer(arg)) = nullptr;
}
}

}  // namespace

void MergeRun::prepare_statement() {
    m_counting = upsert_counting(m_spec, m_res);
    const std::string sql = merge_statement_sql(m_spec, m_res, m_handle, m_counting);
    m_plan = pg_call([&] {
        SPIPlanPtr p = SPI_prepare(sql.c_str(), 0, NULL);
        if (p == NULL)
            elog(ERROR, "pg_ingest: could not prepare merge statement: %s",
                 SPI_result_code_string(SPI_result));
        return p;
    });
}

void MergeRun::start_chunk() {
    m_kept.clear();
    m_group_members = 0;
    // Everything of the previous chunk goes, including a tuplestore that a failed statement
    // took and never freed (ON_ERROR 'ignore'): memory stays bounded by one chunk.
    pg_call([&] {
        end_kept();
        MemoryContextReset(m_chunk_cxt);
    });
    m_apply_cxt = nullptr;  // deleted with its parent
    m_chunk = pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_chunk_cxt);
        Tuplestorestate* ts = tuplestore_begin_heap(false, false, work_mem);
        if (keeps_raw())
            m_kept_rows = tuplestore_begin_heap(false, false, work_mem);
        if (keeps_groups())
            m_members = tuplestore_begin_heap(false, false, work_mem);
        MemoryContextSwitchTo(old);
        return ts;
    });
    m_chunk_groups = 0;
    m_chunk_rows = 0;
}

// A row of the current key group, kept for a one-at-a-time replay (see Kept::members).
void MergeRun::add_member(TupleTableSlot* row) {
    pg_call([&] { tuplestore_puttupleslot(m_members, row); });
    m_group_members++;
}

void MergeRun::add_to_chunk(TupleTableSlot* leader, TupleTableSlot* first, int64_t group_rows) {
    Datum values[MaxTupleAttributeNumber];
    bool nulls[MaxTupleAttributeNumber];
    int64_t seq = 0;
    text* raw = nullptr;
    pg_call([&] {
        slot_getallattrs(leader);
        for (int i = 0; i < m_ncols; i++) {
            values[i] = leader->tts_values[i];
            nulls[i] = leader->tts_isnull[i];
        }
        if (first) {
            slot_getallattrs(first);
            for (int pos : m_first_positions) {
                values[pos] = first->tts_values[pos];
                nulls[pos] = first->tts_isnull[pos];
            }
        }
        seq = DatumGetInt64(leader->tts_values[m_ncols]);
        if (keeps_raw() && !leader->tts_isnull[m_ncols + 1])
            raw = DatumGetTextPP(leader->tts_values[m_ncols + 1]);
    });
    add_row(values, nulls, group_rows, seq, raw ? VARDATA_ANY(raw) : nullptr,
            raw ? static_cast<int>(VARSIZE_ANY_EXHDR(raw)) : 0);
}

// One winning row into the current chunk (values for the source columns).
void MergeRun::add_row(const Datum* in_values, const bool* in_nulls, int64_t group_rows,
                       int64_t seq, const char* raw, int raw_len) {
    pg_call([&] {
        Datum values[MaxTupleAttributeNumber];
        bool nulls[MaxTupleAttributeNumber];
        for (int i = 0; i < m_ncols; i++) {
            values[i] = in_values[i];
            nulls[i] = in_nulls[i];
        }
        values[m_ncols] = Int64GetDatum(group_rows);
        nulls[m_ncols] = false;
        values[m_ncols + 1] = Int64GetDatum(seq);
        nulls[m_ncols + 1] = false;
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        tuplestore_putvalues(m_chunk, m_chunk_desc, values, nulls);
        if (keeps_raw()) {
            values[m_ncols] = Int64GetDatum(seq);
            values[m_ncols + 1] =
                raw ? PointerGetDatum(cstring_to_text_with_len(raw, raw_len)) : (Datum)0;
            nulls[m_ncols + 1] = raw == nullptr;
            tuplestore_putvalues(m_kept_rows, m_sort_desc, values, nulls);
            if (raw)
                pfree(DatumGetPointer(values[m_ncols + 1]));
        }
        MemoryContextSwitchTo(old);
    });
    if (keeps_raw())
        m_kept.push_back(Kept{group_rows, m_group_members, m_group_replay});
    m_chunk_replay = m_chunk_replay || m_group_replay;
    m_group_replay = false;
    m_group_members = 0;
    m_chunk_groups++;
    m_chunk_rows += group_rows;
    if (m_chunk_groups >= m_chunk_limit) {
        flush_chunk();
        start_chunk();
    }
}

// Errors from the merge statement name the merge, not our internal SQL: SPI's
// "SQL statement ..." context line and everything outside it is replaced by one line about the
// command; lines from deeper (a trigger function, say) stay.
void MergeRun::rewrite_context(const PgError& e) const {
    ErrorData* ed = e.data();
    std::string kept;
    if (ed->context) {
        std::string all = ed->context;
        size_t pos = all.find("SQL statement \"");
        kept = all.substr(0, pos == std::string::npos ? all.size() : pos);
    }
    const DirectFailure& f = m_direct_failure;
    const bool same = f.line > 0 && f.sqlerrcode == ed->sqlerrcode &&
                      f.message == (ed->message ? ed->message : "") &&
                      f.detail == (ed->detail ? ed->detail : "");
    kept += context_into(m_spec);
    if (same)
        kept += context_position(m_spec, f.line);
    kept += format(", applying rows with ON_CONFLICT '%s'", conflict_mode_name(m_spec.mode));
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(ed));
        if (ed->context)
            pfree(ed->context);
        ed->context = pstrdup(kept.c_str());
        MemoryContextSwitchTo(old);
    });
}

MergeRun::ChunkResult MergeRun::execute_chunk(int64_t groups) {
    // A trigger on the target may run a merge of its own inside our statement: it counts from
    // zero and gives our count back when it ends, however it ends.
    struct KeepOuterCount {
        int64_t outer = g_conflicts;
        ~KeepOuterCount() { g_conflicts = outer; }
    } keep;
    g_conflicts = 0;
    ChunkResult r{0, 0};
    const bool is_update = m_spec.mode == ConflictMode::update;
    if (m_direct) {
        const DirectResult d = m_direct->apply(m_chunk);
        r = ChunkResult{d.inserted + d.updated, d.updated};
        pg_call([&] { tuplestore_end(m_chunk); });
        m_chunk = nullptr;
        return r;
    }
    m_statements_run++;
    try {
        m_serve_armed = true;
        pg_call([&] {
            int rc = SPI_execute_plan(m_plan, NULL, NULL, false, 0);
            m_serve_armed = false;
            m_served = nullptr;  // the statement ended: so did its scan, which freed the chunk
            if (rc < 0)
                elog(ERROR, "pg_ingest: merge statement failed: %s", SPI_result_code_string(rc));
            bool isnull;
            if (is_update) {
                r.processed = DatumGetInt64(
                    SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
            } else if (m_counting == UpsertCounting::returning) {
                r.processed = DatumGetInt64(
                    SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
                const int64_t inserted = DatumGetInt64(
                    SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
                r.conflicts = r.processed - inserted;  // updates that were really written
            } else {
                r.processed = static_cast<int64_t>(SPI_processed);
            }
        });
    } catch (const PgError& e) {
        m_serve_armed = false;
        rewrite_context(e);
        pg_call([&] { end_served(); });
        throw;
    }
    if (m_counting == UpsertCounting::conflicts) {
        r.conflicts = g_conflicts;
    } else if (m_counting == UpsertCounting::by_groups) {
        // Every group either inserted or took the update path; the updates written are the
        // rows written that did not insert.
        const int64_t inserted = std::max<int64_t>(0, groups - g_conflicts);
        r.conflicts = std::max<int64_t>(0, r.processed - inserted);
    }
    // The executor's function scan has taken the chunk and freed it with itself.
    if (m_chunk) {
        pg_call([&] { tuplestore_end(m_chunk); });
        m_chunk = nullptr;
    }
    return r;
}

// Counts as if the rows had been applied one at a time in input order.
void MergeRun::count(const ChunkResult& r, int64_t groups, int64_t rows) {
    switch (m_spec.mode) {
        case ConflictMode::strict:
        case ConflictMode::none:
            m_counts.inserted += r.processed;
            break;
        case ConflictMode::ignore:
            m_counts.inserted += r.processed;
            m_counts.skipped += rows - r.processed;
            break;
        case ConflictMode::upsert:
            if (m_res.update_columns.empty()) {
                m_counts.inserted += r.processed;
                m_counts.skipped += rows - r.processed;
            } else {
                const int64_t inserted = r.processed - r.conflicts;
                const int64_t untouched = groups - r.processed;  // e.g. a trigger skipped it
                m_counts.inserted += inserted;
                m_counts.skipped += untouched;
                m_counts.updated += rows - inserted - untouched;
            }
            break;
        case ConflictMode::update:
            m_counts.updated += r.processed;
            m_counts.skipped += rows - r.processed;
            break;
    }
    if (m_spec.on_progress)
        m_spec.on_progress(m_counts);
}

// A unique violation of the conflict index itself, or of an index that says the same (or, on
// a partitioned target, of a partition's index attached to one of them).
bool MergeRun::is_arbiter_violation(const PgError& e) const {
    const ErrorData* ed = e.data();
    if (e.sqlerrcode() != ERRCODE_UNIQUE_VIOLATION || !ed->constraint_name || !ed->schema_name)
        return false;
    std::vector<Oid> arbiters = m_res.target.equivalents;
    arbiters.push_back(m_res.target.index);
    return pg_call([&] {
        Oid nsp = get_namespace_oid(ed->schema_name, true);
        Oid idx = OidIsValid(nsp) ? get_relname_relid(ed->constraint_name, nsp) : InvalidOid;
        if (!OidIsValid(idx))
            return false;
        List* ancestors = get_partition_ancestors(idx);
        for (Oid arbiter : arbiters)
            if (idx == arbiter || list_member_oid(ancestors, arbiter))
                return true;
        return false;
    });
}

bool MergeRun::rejectable(const PgError& e) const {
    const int cls = ERRCODE_TO_CATEGORY(e.sqlerrcode());
    if (cls == ERRCODE_TO_CATEGORY(ERRCODE_DATA_EXCEPTION))
        return true;
    if (cls != ERRCODE_TO_CATEGORY(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION))
        return false;
    // A violation of the conflict index is the conflict, never a bad row.
    return !is_arbiter_violation(e);
}

void MergeRun::flush_chunk() {
    if (m_chunk_groups == 0 && m_statement_triggers && m_statements_run == 0 && !m_direct &&
        m_chunk) {
        // No rows at all: the statement still runs once for its statement triggers.
        count(execute_chunk(0), 0, 0);
        return;
    }
    if (m_chunk_groups == 0) {
        if (m_chunk)
            pg_call([&] { tuplestore_end(m_chunk); });
        m_chunk = nullptr;
        return;
    }
    if (m_direct) {
        flush_direct_chunk();
        return;
    }
    if (!m_spec.ignore_errors) {
        count(execute_chunk(m_chunk_groups), m_chunk_groups, m_chunk_rows);
        return;
    }
    if (m_chunk_replay) {
        // A superseded row failed: the chunk goes one row (or group) at a time instead.
        m_chunk_replay = false;
        if (m_chunk)
            pg_call([&] { tuplestore_end(m_chunk); });
        m_chunk = nullptr;
        retry_rows_one_by_one();
        return;
    }
    try {
        ChunkResult r{0, 0};
        with_subtransaction([&] { r = execute_chunk(m_chunk_groups); });
        count(r, m_chunk_groups, m_chunk_rows);
    } catch (const PgError& e) {
        if (!rejectable(e))
            throw;
        e.release();
        if (m_chunk)
            pg_call([&] { tuplestore_end(m_chunk); });
        m_chunk = nullptr;
        retry_rows_one_by_one();
    }
}

// A direct chunk runs in a subtransaction. When it fails (a concurrent insert of one of its new
// keys between probe and index entry, a constraint violation, a row changed under a check, a
// unique violation of another index found only when its buffered rows were flushed), it is
// rolled back, and it and every later chunk go through the statement. So what the user gets,
// rows or error, is always the statement's, with its handling of races and its error order.
// Cancels, shutdowns, out-of-resource and internal errors are not retried. Neither is a chunk
// started once this backend's cached subtransaction ids run low (another merge in the same
// transaction, savepoints of the caller): the rest goes through the statement at once.
void MergeRun::flush_direct_chunk() {
    ChunkResult r{0, 0};
    const bool room = !MyProc->subxidStatus.overflowed &&
                      MyProc->subxidStatus.count < PGPROC_MAX_CACHED_SUBXIDS - 8;
    std::string why =
        "statement from a chunk where this transaction had few subtransaction ids "
        "left";
    if (room) {
        try {
            with_subtransaction([&] { r = execute_chunk(m_chunk_groups); });
            count(r, m_chunk_groups, m_chunk_rows);
            return;
        } catch (const PgError& e) {
            const int cls = ERRCODE_TO_CATEGORY(e.sqlerrcode());
            if (cls == ERRCODE_TO_CATEGORY(ERRCODE_OPERATOR_INTERVENTION) ||
                cls == ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES) ||
                cls == ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR) ||
                cls == ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR))
                throw;
            why = format("statement from a chunk that failed directly with SQLSTATE %s",
                         unpack_sql_state(e.sqlerrcode()));
            const ErrorData* ed = e.data();
            m_direct_failure =
                DirectFailure{m_direct->failed_line(), ed->sqlerrcode,
                              ed->message ? ed->message : "", ed->detail ? ed->detail : ""};
            e.release();
        }
    }
    m_direct->close();
    m_direct.reset();
    m_path = "direct, then " + why;
    begin_statement();
    pg_call([&] { tuplestore_rescan(m_chunk); });
    count(execute_chunk(m_chunk_groups), m_chunk_groups, m_chunk_rows);
    m_direct_failure = DirectFailure{};  // the statement applied that chunk: nothing to name
}

void MergeRun::serve(FunctionCallInfo fcinfo) {
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (!m_chunk || !m_serve_armed) {
        // A second call in one statement (a rule added a statement that reads the rows too):
        // the first one's store may be freed already.
        m_served = nullptr;
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "ingest._merge_rows() has no rows to serve",
              "It is called only by the statements of a running merge.");
    }
    TupleDesc expected = rsinfo->expectedDesc;
    bool matches = expected && expected->natts == m_chunk_desc->natts;
    for (int i = 0; matches && i < expected->natts; i++)
        matches = TupleDescAttr(expected, i)->atttypid == TupleDescAttr(m_chunk_desc, i)->atttypid;
    if (!matches)
        raise(ERRCODE_DATATYPE_MISMATCH, "ingest._merge_rows() called with a wrong row type");
    // A copy: the executor frees a returned descriptor that is not reference-counted, and the
    // expected one is the scan's own.
    TupleDesc desc = pg_call([&] { return CreateTupleDescCopy(expected); });
    rsinfo->returnMode = SFRM_Materialize;
    rsinfo->setResult = m_chunk;  // the function scan frees it when it ends
    rsinfo->setDesc = desc;
    m_served = m_chunk;
    m_chunk = nullptr;
    m_serve_armed = false;
    // The executor state is freed after the scan freed the store (not on an error): from then
    // on the store is not ours to close.
    pg_call([&] {
        RegisterExprContextCallback(rsinfo->econtext, forget_served, PointerGetDatum(&m_served));
    });
}

}  // namespace pg_ingest::merge_detail
