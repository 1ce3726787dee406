// SQL functions of the merge engine: ingest.merge(), ingest.last_copy_stats(),
// ingest.last_copy_rejects(), and the internal ingest._merge_rows() /
// ingest._merge_note_conflict() that the merge statements call.
#include "conflict_target.hpp"
#include "cursor_source.hpp"
#include "merge.hpp"
#include "guc.hpp"
#include "session_stats.hpp"

extern "C" {
#include "access/relation.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include <algorithm>
#include <utility>

namespace pg_ingest {

namespace session {
namespace {
MergeCounts g_counts;
std::vector<RejectedRow> g_rejects;
const std::vector<RejectedRow> g_none;
uint64_t g_not_kept = 0;
Oid g_owner = InvalidOid;
}  // namespace
void begin_copy(Oid owner) {
    g_counts = MergeCounts{};
    g_rejects.clear();
    g_rejects.shrink_to_fit();  // a large list from the last COPY is not held any longer
    g_not_kept = 0;
    g_owner = owner;
}
void forget() {
    begin_copy(InvalidOid);
}
// Rejects arrive in key order; the ones kept are those of the first lines (a heap on the line,
// the last kept line on top), so a capped list shows the first bad lines of the input.
bool earlier_line(const RejectedRow& a, const RejectedRow& b) {
    return a.line_number < b.line_number;
}
void add_reject(RejectedRow&& r) {
    if (g_rejects.size() < static_cast<size_t>(guc::copy_rejects_kept)) {
        g_rejects.push_back(std::move(r));
        std::push_heap(g_rejects.begin(), g_rejects.end(), earlier_line);
        return;
    }
    g_not_kept++;
    if (!g_rejects.empty() && r.line_number < g_rejects.front().line_number) {
        std::pop_heap(g_rejects.begin(), g_rejects.end(), earlier_line);
        g_rejects.back() = std::move(r);
        std::push_heap(g_rejects.begin(), g_rejects.end(), earlier_line);
    }
}
uint64_t rejects_not_kept() {
    return g_not_kept;
}
void finish_copy(const MergeCounts& c) {
    g_counts = c;
}
MergeCounts last_counts(Oid reader) {
    return reader == g_owner ? g_counts : MergeCounts{};
}
const std::vector<RejectedRow>& last_rejects(Oid reader) {
    return reader == g_owner ? g_rejects : g_none;
}
}  // namespace session

namespace {

Datum counts_tuple(FunctionCallInfo fcinfo, const MergeCounts& c) {
    return pg_call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "return type must be a row type");
        desc = BlessTupleDesc(desc);
        Datum v[4] = {Int64GetDatum(c.inserted), Int64GetDatum(c.updated), Int64GetDatum(c.skipped),
                      Int64GetDatum(c.rejected)};
        bool n[4] = {false, false, false, false};
        return HeapTupleGetDatum(heap_form_tuple(desc, v, n));
    });
}

}  // namespace

}  // namespace pg_ingest

using namespace pg_ingest;

// ingest.merge(source, target, conflict_mode, conflict_columns, update_columns)
PGI_FUNCTION(ingest_merge) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
        raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, "source, target and conflict_mode must not be NULL");
    const Oid source = PG_GETARG_OID(0);
    const Oid target = PG_GETARG_OID(1);
    MergeSpec spec;
    spec.what = "source";
    // The source is read in no set order: a row's number there would identify nothing.
    spec.position.clear();
    spec.mode = parse_conflict_mode(text_to_string(pg_call([&] { return PG_GETARG_TEXT_PP(2); })));
    spec.conflict_names = column_names_arg(fcinfo, 3, "conflict_columns");
    spec.update_names = column_names_arg(fcinfo, 4, "update_columns");

    // Some privilege first, then locks: a role with no right on a table must not take (or
    // queue for) a lock on it through this function. The full checks follow once locked.
    check_access_before_lock(target, ACL_INSERT);
    check_access_before_lock(source, ACL_SELECT);
    Relation rel = pg_call([&] { return table_open(target, RowExclusiveLock); });
    // Not locked yet: a source dropped meanwhile has no name (the merge then fails opening it).
    const char* source_name = pg_call([&] { return get_rel_name(source); });
    spec.context = source_name ? format("ingest.merge() from %s", source_name)
                               : format("ingest.merge() from relation %u", source);
    const char kind = rel->rd_rel->relkind;
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
        raise(ERRCODE_WRONG_OBJECT_TYPE,
              format("cannot merge into \"%s\": it is not a table", RelationGetRelationName(rel)));
    // As COPY FROM and INSERT refuse: the direct path writes without the executor's checks.
    pg_call([&] {
        PreventCommandIfParallelMode("ingest.merge()");
        if (!rel->rd_islocaltemp)
            PreventCommandIfReadOnly("ingest.merge()");
    });
    if (source == target)
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "source and target of a merge must differ");

    // Source columns are matched to target columns by name; all must exist in the target.
    const std::vector<std::string> names = source_columns(source);
    spec.columns = match_columns(names, rel);
    spec.target = rel;
    validate_merge(spec);  // before reading anything

    CursorSource src(source, names, rel, spec.columns);
    const MergeCounts counts = run_merge(spec, src, [](RejectedRow&&) {});
    src.close();
    pg_call([&] { table_close(rel, NoLock); });
    return counts_tuple(fcinfo, counts);
}

PGI_FUNCTION(ingest_last_copy_stats) {
    return counts_tuple(fcinfo, session::last_counts(GetUserId()));
}

PGI_FUNCTION(ingest_last_copy_rejects) {
    const auto& kept = session::last_rejects(GetUserId());
    // In input order (they are kept as a heap on the line).
    std::vector<const RejectedRow*> rejects;
    rejects.reserve(kept.size());
    for (const RejectedRow& r : kept)
        rejects.push_back(&r);
    std::stable_sort(
        rejects.begin(), rejects.end(),
        [](const RejectedRow* a, const RejectedRow* b) { return a->line_number < b->line_number; });
    pg_call([&] {
        InitMaterializedSRF(fcinfo, 0);
        ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
        for (const RejectedRow* row : rejects) {
            const RejectedRow& r = *row;
            Datum v[4];
            bool n[4] = {false, false, false, false};
            v[0] = Int64GetDatum(r.line_number);
            // Every reject comes from a text or csv line (binary input cannot skip rows); an
            // empty line is an empty string, not NULL.
            v[1] = PointerGetDatum(
                cstring_to_text_with_len(r.raw_line.data(), static_cast<int>(r.raw_line.size())));
            v[2] = PointerGetDatum(cstring_to_text(r.sqlstate.c_str()));
            v[3] = PointerGetDatum(cstring_to_text(r.message.c_str()));
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
        }
    });
    return Datum(0);
}

PGI_FUNCTION(ingest_merge_rows) {
    merge_internal::serve_rows(PG_GETARG_INT32(0), fcinfo);
    return Datum(0);
}

// Called once per row that takes the DO UPDATE path of an upsert; a plain counter, so it
// runs without a SET search_path clause (it resolves no names).
PGI_FUNCTION(ingest_merge_note_conflict) {
    merge_internal::note_conflict();
    PG_RETURN_BOOL(true);
}
