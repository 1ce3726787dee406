// SQL functions of the merge engine: ingest.merge(), ingest.last_copy_stats(),
// ingest.last_copy_rejects(), and the internal ingest._merge_rows() /
// ingest._merge_note_conflict() that the merge statements call.
#include "merge.hpp"
#include "session_stats.hpp"

extern "C" {
#include "access/relation.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace pg_ingest {

namespace session {
namespace {
MergeCounts g_counts;
std::vector<RejectedRow> g_rejects;
}  // namespace
void begin_copy() {
    g_counts = MergeCounts{};
    g_rejects.clear();
}
void add_reject(RejectedRow&& r) {
    g_rejects.push_back(std::move(r));
}
void finish_copy(const MergeCounts& c) {
    g_counts = c;
}
const MergeCounts& last_counts() {
    return g_counts;
}
const std::vector<RejectedRow>& last_rejects() {
    return g_rejects;
}
}  // namespace session

namespace {

// Rows of a table (or anything SELECTable), read as the calling user through a cursor.
class CursorSource : public RowSource {
  public:
    CursorSource(Oid source, const std::vector<std::string>& names) {
        std::string cols;
        for (const std::string& n : names)
            cols += (cols.empty() ? "" : ", ") +
                    std::string(pg_call([&] { return quote_identifier(n.c_str()); }));
        const std::string sql =
            "SELECT " + cols + " FROM " + pg_call([&] {
                return quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
                                                  get_rel_name(source));
            });
        m_ncols = static_cast<int>(names.size());
        m_values.resize(m_ncols);
        m_nulls.reset(new bool[m_ncols]);
        pg_call([&] {
            if (SPI_connect() != SPI_OK_CONNECT)
                elog(ERROR, "SPI_connect failed");
            SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, NULL);
            if (!plan)
                elog(ERROR, "could not read source: %s", SPI_result_code_string(SPI_result));
            m_portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
        });
    }
    bool next(SourceRow& row) override {
        if (m_pos >= m_count) {
            if (m_done)
                return false;
            pg_call([&] {
                if (SPI_tuptable)
                    SPI_freetuptable(SPI_tuptable);
                SPI_cursor_fetch(m_portal, true, 1000);
                m_count = SPI_processed;
            });
            m_pos = 0;
            if (m_count == 0) {
                m_done = true;
                return false;
            }
        }
        pg_call([&] {
            HeapTuple tup = SPI_tuptable->vals[m_pos];
            for (int i = 0; i < m_ncols; i++)
                m_values[i] = SPI_getbinval(tup, SPI_tuptable->tupdesc, i + 1, &m_nulls[i]);
        });
        m_pos++;
        row.values = m_values.data();
        row.nulls = m_nulls.get();
        row.line_number = ++m_line;
        row.raw = nullptr;
        return true;
    }
    void close() {
        pg_call([&] {
            SPI_cursor_close(m_portal);
            SPI_finish();
        });
    }

  private:
    int m_ncols = 0;
    std::vector<Datum> m_values;
    std::unique_ptr<bool[]> m_nulls;
    Portal m_portal = nullptr;
    uint64 m_count = 0, m_pos = 0;
    int64_t m_line = 0;
    bool m_done = false;
};

std::vector<std::string> text_array(FunctionCallInfo fcinfo, int n) {
    std::vector<std::string> out;
    if (PG_ARGISNULL(n))
        return out;
    Datum* elems = nullptr;
    bool* nulls = nullptr;
    int count = 0;
    pg_call([&] {
        ArrayType* arr = PG_GETARG_ARRAYTYPE_P(n);
        deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
    });
    for (int i = 0; i < count; i++) {
        if (nulls[i])
            raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, "column names must not be NULL");
        out.push_back(text_to_string(
            reinterpret_cast<text*>(pg_call([&] { return PG_DETOAST_DATUM_PACKED(elems[i]); }))));
    }
    return out;
}

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
    spec.mode = parse_conflict_mode(text_to_string(pg_call([&] { return PG_GETARG_TEXT_PP(2); })));
    spec.conflict_names = text_array(fcinfo, 3);
    spec.update_names = text_array(fcinfo, 4);

    Relation rel = pg_call([&] { return table_open(target, RowExclusiveLock); });
    const char kind = rel->rd_rel->relkind;
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
        raise(ERRCODE_WRONG_OBJECT_TYPE,
              format("cannot merge into \"%s\": it is not a table", RelationGetRelationName(rel)));
    if (source == target)
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "source and target of a merge must differ");

    // Source columns are matched to target columns by name; all must exist in the target.
    std::vector<std::string> names;
    pg_call([&] {
        Relation src = relation_open(source, AccessShareLock);
        TupleDesc d = RelationGetDescr(src);
        for (int i = 0; i < d->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(d, i);
            if (!att->attisdropped)
                names.emplace_back(NameStr(att->attname));
        }
        relation_close(src, NoLock);
    });
    TupleDesc td = RelationGetDescr(rel);
    for (const std::string& n : names) {
        AttrNumber found = InvalidAttrNumber;
        for (int i = 0; i < td->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(td, i);
            if (!att->attisdropped && n == NameStr(att->attname))
                found = att->attnum;
        }
        if (found == InvalidAttrNumber)
            raise(ERRCODE_UNDEFINED_COLUMN,
                  format("source column \"%s\" does not exist in target \"%s\"", n.c_str(),
                         RelationGetRelationName(rel)),
                  {}, "The source's columns are matched to the target's by name.");
        if (TupleDescAttr(td, found - 1)->attgenerated)
            raise(ERRCODE_GENERATED_ALWAYS,
                  format("source column \"%s\" is a generated column of the target", n.c_str()));
        spec.columns.push_back(found);
    }
    spec.target = rel;
    validate_merge(spec);  // before reading anything

    CursorSource src(source, names);
    const MergeCounts counts = run_merge(spec, src, [](RejectedRow&&) {});
    src.close();
    pg_call([&] { table_close(rel, NoLock); });
    return counts_tuple(fcinfo, counts);
}

PGI_FUNCTION(ingest_last_copy_stats) {
    return counts_tuple(fcinfo, session::last_counts());
}

PGI_FUNCTION(ingest_last_copy_rejects) {
    const auto& rejects = session::last_rejects();
    pg_call([&] {
        InitMaterializedSRF(fcinfo, 0);
        ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
        for (const RejectedRow& r : rejects) {
            Datum v[4];
            bool n[4] = {false, false, false, false};
            v[0] = Int64GetDatum(r.line_number);
            n[1] = r.raw_line.empty();
            v[1] = n[1] ? Datum(0)
                        : PointerGetDatum(cstring_to_text_with_len(
                              r.raw_line.data(), static_cast<int>(r.raw_line.size())));
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
