#include "cursor_source.hpp"

extern "C" {
#include "access/relation.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

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

CursorSource::CursorSource(Oid source, const std::vector<std::string>& names, bool with_raw)
    : m_with_raw(with_raw) {
    std::string cols;
    for (const std::string& n : names)
        cols += (cols.empty() ? "" : ", ") +
                std::string(pg_call([&] { return quote_identifier(n.c_str()); }));
    std::string sql = "SELECT " + cols;
    if (with_raw)
        sql += ", ROW(" + cols + ")::text";
    sql += " FROM " + std::string(pg_call([&] {
               return quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
                                                 get_rel_name(source));
           }));
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

bool CursorSource::next(SourceRow& row) {
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
    const char* raw = nullptr;
    pg_call([&] {
        HeapTuple tup = m_table->vals[m_pos];
        for (int i = 0; i < m_ncols; i++)
            m_values[i] = SPI_getbinval(tup, m_table->tupdesc, i + 1, &m_nulls[i]);
        if (m_with_raw)
            raw = SPI_getvalue(tup, m_table->tupdesc, m_ncols + 1);
    });
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
        SPI_cursor_close(m_portal);
        SPI_finish();
    });
}

}  // namespace pg_ingest
