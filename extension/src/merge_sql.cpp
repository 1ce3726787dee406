// The SQL statement that applies one chunk of a merge (see merge.hpp). Identifiers are
// quoted, operators are schema-qualified, and types come from the target's catalog entry, so
// neither search_path nor odd names can change what it does.
#include "merge_sql.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "access/relation.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
}

namespace pg_ingest {

namespace {

std::string qident(const std::string& s) {
    return pg_call([&] { return quote_identifier(s.c_str()); });
}

std::string qualified_name(Relation rel) {
    return pg_call([&] {
        return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
                                          RelationGetRelationName(rel));
    });
}

// "OPERATOR(schema.op)" for an operator oid, so no search_path can redirect it.
std::string operator_sql(Oid opno) {
    char buf[2 * NAMEDATALEN + 32];
    pg_call([&] {
        HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
        if (!HeapTupleIsValid(tup))
            elog(ERROR, "cache lookup failed for operator %u", opno);
        Form_pg_operator op = (Form_pg_operator)GETSTRUCT(tup);
        snprintf(buf, sizeof(buf), "OPERATOR(%s.%s)",
                 quote_identifier(get_namespace_name(op->oprnamespace)), NameStr(op->oprname));
        ReleaseSysCache(tup);
    });
    return buf;
}

// COPY writes given values into GENERATED ALWAYS identity columns; INSERT needs this clause to.
std::string overriding_clause(const MergeSpec& spec) {
    TupleDesc rd = RelationGetDescr(spec.target);
    for (AttrNumber a : spec.columns)
        if (TupleDescAttr(rd, a - 1)->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
            return " OVERRIDING SYSTEM VALUE";
    return "";
}

bool has_before_update_row_trigger(Relation rel) {
    return rel->trigdesc && rel->trigdesc->trig_update_before_row;
}

}  // namespace

bool any_in_tree(Relation rel, bool (*has)(Relation)) {
    if (has(rel))
        return true;
    if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
        return false;
    return pg_call([&] {
        List* all = find_all_inheritors(RelationGetRelid(rel), AccessShareLock, NULL);
        ListCell* lc;
        foreach (lc, all) {
            Relation part = relation_open(lfirst_oid(lc), NoLock);
            const bool found = has(part);
            relation_close(part, NoLock);
            if (found)
                return true;
        }
        return false;
    });
}

UpsertCounting upsert_counting(const MergeSpec& spec, const ResolvedMerge& res) {
    if (spec.mode != ConflictMode::upsert || res.update_columns.empty())
        return UpsertCounting::conflicts;
    Relation rel = spec.target;
    if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE) {
        if (!has_before_update_row_trigger(rel))
            return UpsertCounting::conflicts;
        // RETURNING xmax reads a system column, which needs SELECT on the whole table (column
        // grants do not cover it): without it, count by groups, as for a partitioned target.
        const bool may_select = pg_call([&] {
            return pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT) == ACLCHECK_OK;
        });
        return may_select ? UpsertCounting::returning : UpsertCounting::by_groups;
    }
    return any_in_tree(rel, has_before_update_row_trigger) ? UpsertCounting::by_groups
                                                           : UpsertCounting::conflicts;
}

std::string merge_statement_sql(const MergeSpec& spec, const ResolvedMerge& res, int handle,
                                UpsertCounting counting) {
    const int ncols = static_cast<int>(spec.columns.size());

    Relation rel = spec.target;
    TupleDesc rd = RelationGetDescr(rel);
    auto col = [&](AttrNumber a) { return qident(NameStr(TupleDescAttr(rd, a - 1)->attname)); };
    auto src = [&](AttrNumber a) {
        for (int i = 0; i < ncols; i++)
            if (spec.columns[i] == a)
                return "s.c" + std::to_string(i + 1);
        return std::string("NULL");
    };
    std::string coldefs, cols, srccols;
    for (int i = 0; i < ncols; i++) {
        Form_pg_attribute att = TupleDescAttr(rd, spec.columns[i] - 1);
        std::string type =
            pg_call([&] { return format_type_with_typemod(att->atttypid, att->atttypmod); });
        coldefs += "c" + std::to_string(i + 1) + " " + type;
        if (OidIsValid(att->attcollation) && att->attcollation != DEFAULT_COLLATION_OID)
            coldefs +=
                " COLLATE " +
                std::string(pg_call([&] { return generate_collation_name(att->attcollation); }));
        coldefs += ", ";
        cols += (i ? ", " : "") + col(spec.columns[i]);
        srccols += (i ? ", " : "") + ("s.c" + std::to_string(i + 1));
    }
    coldefs += "n bigint, seq bigint";
    const std::string from = format("ingest._merge_rows(%d) AS s(%s)", handle, coldefs.c_str());
    const std::string target = qualified_name(rel);
    std::string keys;
    for (AttrNumber k : res.target.keys)
        keys += (keys.empty() ? "" : ", ") + col(k);

    const std::string insert = "INSERT INTO " + target + " (" + cols + ")" +
                               overriding_clause(spec) + " SELECT " + srccols + " FROM " + from;
    std::string sql;
    switch (spec.mode) {
        case ConflictMode::strict:
        case ConflictMode::none:
            sql = insert;
            break;
        case ConflictMode::ignore:
            sql = insert + " ON CONFLICT (" + keys + ") DO NOTHING";
            break;
        case ConflictMode::upsert: {
            sql = insert + " ON CONFLICT (" + keys + ") DO ";
            if (res.update_columns.empty()) {
                sql += "NOTHING";
            } else {
                std::string set;
                for (AttrNumber a : res.update_columns)
                    set += (set.empty() ? "" : ", ") + col(a) + " = EXCLUDED." + col(a);
                if (counting == UpsertCounting::returning) {
                    // An updated row carries our lock in xmax, a new one has none.
                    sql = "WITH w AS (" + sql + "UPDATE SET " + set +
                          " RETURNING (xmax OPERATOR(pg_catalog.=) 0) AS ins) SELECT "
                          "pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE ins) FROM w";
                } else {
                    sql += "UPDATE SET " + set + " WHERE ingest._merge_note_conflict()";
                }
            }
            break;
        }
        case ConflictMode::update: {
            std::string set, join;
            for (AttrNumber a : res.update_columns)
                set += (set.empty() ? "" : ", ") + col(a) + " = " + src(a);
            for (size_t i = 0; i < res.target.keys.size(); i++) {
                const std::string t = "t." + col(res.target.keys[i]);
                const std::string v = src(res.target.keys[i]);
                // Keys are equal as the unique index sees them: with its collation, which may
                // differ from the column's (a nondeterministic one, say).
                std::string collate;
                if (OidIsValid(res.target.collations[i]))
                    collate = " COLLATE " + std::string(pg_call([&] {
                                  return generate_collation_name(res.target.collations[i]);
                              }));
                std::string eq = t + collate + " " + operator_sql(res.target.eq_operators[i]) +
                                 " " + v + collate;
                // Under NULLS NOT DISTINCT a NULL key is a key like any other.
                if (res.target.nulls_not_distinct)
                    eq = "(" + eq + " OR (" + t + " IS NULL AND " + v + " IS NULL))";
                join += (i ? " AND " : "") + eq;
            }
            const bool only = rel->rd_rel->relkind == RELKIND_RELATION;
            sql = "WITH u AS (UPDATE " + std::string(only ? "ONLY " : "") + target + " AS t SET " +
                  set + " FROM " + from + " WHERE " + join +
                  " RETURNING s.n) SELECT pg_catalog.count(*), "
                  "coalesce(pg_catalog.sum(n), 0)::bigint FROM u";
            break;
        }
    }
    return sql;
}

}  // namespace pg_ingest
