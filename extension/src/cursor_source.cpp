#include "cursor_source.hpp"

extern "C" {
#include "access/relation.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include <algorithm>

namespace pg_ingest {

std::vector<std::string> source_columns(Oid source) {
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
    return names;
}

std::vector<AttrNumber> match_columns(const std::vector<std::string>& names, Relation rel) {
    std::vector<AttrNumber> out;
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
        out.push_back(found);
    }
    return out;
}

namespace {

// The conversion INSERT would apply to a source column going into `to`, as an expression over
// column `column` of the fetched row; nullptr when the value can go in as it is.
Expr* assignment_cast(Form_pg_attribute from, Form_pg_attribute to, int column) {
    if (from->atttypid == to->atttypid && from->atttypmod == to->atttypmod)
        return nullptr;
    Var* var = makeVar(1, static_cast<AttrNumber>(column), from->atttypid, from->atttypmod,
                       from->attcollation, 0);
    Node* cast =
        coerce_to_target_type(NULL, reinterpret_cast<Node*>(var), from->atttypid, to->atttypid,
                              to->atttypmod, COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
    if (cast == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_DATATYPE_MISMATCH),
                 errmsg("target column \"%s\" is of type %s but source column \"%s\" is of type "
                        "%s",
                        NameStr(to->attname), format_type_with_typemod(to->atttypid, to->atttypmod),
                        NameStr(from->attname),
                        format_type_with_typemod(from->atttypid, from->atttypmod)),
                 errhint("Cast the source column, for instance in a view over the source.")));
    return reinterpret_cast<Expr*>(cast);
}

}  // namespace

CursorSource::CursorSource(Oid source, const std::vector<std::string>& names, Relation target,
                           const std::vector<AttrNumber>& attnums, bool with_raw,
                           const std::string& order_by, const RejectSink* on_bad_row)
    : m_with_raw(with_raw), m_on_bad_row(on_bad_row) {
    std::string cols;
    for (const std::string& n : names)
        cols += (cols.empty() ? "" : ", ") +
                std::string(pg_call([&] { return quote_identifier(n.c_str()); }));
    std::string sql = "SELECT " + cols;
    if (with_raw)
        sql += ", ROW(" + cols + ")::pg_catalog.text";
    sql += " FROM " + std::string(pg_call([&] {
               return quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
                                                 get_rel_name(source));
           }));
    sql += order_by;
    m_ncols = static_cast<int>(names.size());
    m_values.resize(m_ncols);
    m_nulls.reset(new bool[m_ncols]);
    // Sized here, in C++: inside pg_call only their elements are set, so an ereport there
    // never jumps over a C++ allocation or destructor.
    std::vector<Expr*> casts(static_cast<std::size_t>(m_ncols), nullptr);
    pg_call([&] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "SPI_connect failed");
        SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, NULL);
        if (!plan)
            elog(ERROR, "could not read source: %s", SPI_result_code_string(SPI_result));
        m_portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
        // The conversions, from the cursor's row type (the source columns' types and typmods),
        // before anything is read. They live in SPI's procedure context until close(): next()
        // runs in a per-row context, so nothing of this may be allocated there.
        for (int i = 0; i < m_ncols; i++)
            casts[static_cast<std::size_t>(i)] =
                assignment_cast(TupleDescAttr(m_portal->tupDesc, i),
                                TupleDescAttr(RelationGetDescr(target), attnums[i] - 1), i + 1);
    });
    if (std::none_of(casts.begin(), casts.end(), [](Expr* e) { return e != nullptr; }))
        return;
    m_casts.assign(casts.size(), nullptr);
    pg_call([&] {
        m_estate = CreateExecutorState();
        for (std::size_t i = 0; i < casts.size(); i++)
            m_casts[i] = casts[i] ? ExecPrepareExpr(casts[i], m_estate) : nullptr;
        m_slot = MakeSingleTupleTableSlot(m_portal->tupDesc, &TTSOpsHeapTuple);
    });
}

bool CursorSource::next(SourceRow& row) {
    for (;;) {
        if (!fetch())
            return false;
        if (convert(row))
            return true;
    }
}

bool CursorSource::fetch() {
    if (m_pos >= m_count) {
        if (m_done)
            return false;
        pg_call([&] {
            if (m_table)
                SPI_freetuptable(m_table);
            m_table = nullptr;
            SPI_cursor_fetch(m_portal, true, 1000);
            // Our own pointer: statements run between two next() calls (an append applies its
            // chunks while reading) replace SPI_tuptable.
            m_table = SPI_tuptable;
            m_count = SPI_processed;
        });
        m_pos = 0;
        if (m_count == 0) {
            m_done = true;
            return false;
        }
    }
    return true;
}

// The row at m_pos into `row`, converted; false when it was handed to m_on_bad_row instead.
bool CursorSource::convert(SourceRow& row) {
    const char* raw = nullptr;
    HeapTuple tup = m_table->vals[m_pos];
    pg_call([&] {
        for (int i = 0; i < m_ncols; i++)
            m_values[i] = SPI_getbinval(tup, m_table->tupdesc, i + 1, &m_nulls[i]);
        if (m_with_raw)
            raw = SPI_getvalue(tup, m_table->tupdesc, m_ncols + 1);
    });
    if (m_estate) {
        const auto cast = [&] {
            pg_call([&] {
                // The previous row's converted values are no longer needed: the merge copied
                // them.
                ExprContext* econtext = GetPerTupleExprContext(m_estate);
                ResetExprContext(econtext);
                ExecStoreHeapTuple(tup, m_slot, false);
                econtext->ecxt_scantuple = m_slot;
                for (int i = 0; i < m_ncols; i++)
                    if (m_casts[i])
                        m_values[i] = ExecEvalExprSwitchContext(m_casts[i], econtext, &m_nulls[i]);
            });
        };
        if (!m_on_bad_row) {
            cast();
        } else {
            try {
                with_subtransaction(cast);
            } catch (const PgError& e) {
                const int category = ERRCODE_TO_CATEGORY(e.sqlerrcode());
                if (category != ERRCODE_TO_CATEGORY(ERRCODE_DATA_EXCEPTION) &&
                    category != ERRCODE_TO_CATEGORY(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION))
                    throw;
                RejectedRow r;
                r.line_number = ++m_line;
                if (raw)
                    r.raw_line.assign(raw);
                r.sqlstate = unpack_sql_state(e.sqlerrcode());
                r.message = e.what();
                e.release();
                m_pos++;
                m_rejected++;
                (*m_on_bad_row)(std::move(r));
                return false;
            }
        }
    }
    m_pos++;
    row.values = m_values.data();
    row.nulls = m_nulls.get();
    row.line_number = ++m_line;
    row.raw = nullptr;
    row.raw_len = 0;
    if (raw) {
        m_raw.assign(raw);
        row.raw = m_raw.data();
        row.raw_len = static_cast<int>(m_raw.size());
    }
    return true;
}

void CursorSource::close() {
    pg_call([&] {
        if (m_slot)
            ExecDropSingleTupleTableSlot(m_slot);
        m_slot = nullptr;
        if (m_estate)
            FreeExecutorState(m_estate);
        m_estate = nullptr;
        SPI_cursor_close(m_portal);
        SPI_finish();
    });
}

}  // namespace pg_ingest
