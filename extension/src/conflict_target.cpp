#include "conflict_target.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/catalog.h"
#include "catalog/index.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/varlena.h"
}

#include <algorithm>
#include <map>
#include <set>

namespace pg_ingest {

namespace {

std::string relname(Relation rel) {
    return RelationGetRelationName(rel);
}

std::string attname(Relation rel, AttrNumber attnum) {
    return NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
}

// The target's live column with this name, or 42703.
AttrNumber find_column(Relation rel, const std::string& name) {
    TupleDesc desc = RelationGetDescr(rel);
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped && name == NameStr(att->attname))
            return att->attnum;
    }
    raise(ERRCODE_UNDEFINED_COLUMN, format("column \"%s\" of relation \"%s\" does not exist",
                                           name.c_str(), relname(rel).c_str()));
}

std::string column_list(Relation rel, const std::vector<AttrNumber>& cols) {
    std::string out;
    for (AttrNumber a : cols)
        out += (out.empty() ? "" : ", ") + attname(rel, a);
    return out;
}

// A unique index of an arbiter's shape: plain columns, no predicate, valid. Fills the key
// attnums and btree operators when it is; `immediate` tells whether ON CONFLICT can use it
// (a deferrable one it refuses).
bool arbiter_shaped_index(Oid indexoid, ConflictTarget& out, bool& immediate) {
    bool usable = false;
    // Plain C data only inside pg_call: it may longjmp.
    struct Raw {
        bool immediate;
        bool usable;
        int nkeys;
        AttrNumber keys[INDEX_MAX_KEYS];
        Oid lt[INDEX_MAX_KEYS], eq[INDEX_MAX_KEYS], coll[INDEX_MAX_KEYS];
        bool nnd;
        char name[NAMEDATALEN];
    } raw{};
    pg_call([&] {
        Relation idx = index_open(indexoid, AccessShareLock);
        Form_pg_index form = idx->rd_index;
        raw.immediate = form->indimmediate;
        raw.usable = form->indisunique && form->indisvalid &&
                     RelationGetIndexExpressions(idx) == NIL &&
                     RelationGetIndexPredicate(idx) == NIL;
        raw.nkeys = form->indnkeyatts;
        raw.nnd = form->indnullsnotdistinct;
        strlcpy(raw.name, RelationGetRelationName(idx), NAMEDATALEN);
        for (int i = 0; raw.usable && i < raw.nkeys; i++) {
            raw.keys[i] = form->indkey.values[i];
            if (raw.keys[i] <= 0)
                raw.usable = false;
            Oid fam = idx->rd_opfamily[i], typ = idx->rd_opcintype[i];
            raw.lt[i] = get_opfamily_member(fam, typ, typ, BTLessStrategyNumber);
            raw.eq[i] = get_opfamily_member(fam, typ, typ, BTEqualStrategyNumber);
            raw.coll[i] = idx->rd_indcollation[i];
            if (!OidIsValid(raw.lt[i]) || !OidIsValid(raw.eq[i]))
                raw.usable = false;
        }
        index_close(idx, AccessShareLock);
    });
    usable = raw.usable;
    immediate = raw.immediate;
    if (!usable)
        return false;
    out = ConflictTarget{};
    out.index = indexoid;
    out.index_name = raw.name;
    out.nulls_not_distinct = raw.nnd;
    for (int i = 0; i < raw.nkeys; i++) {
        out.keys.push_back(raw.keys[i]);
        out.lt_operators.push_back(raw.lt[i]);
        out.eq_operators.push_back(raw.eq[i]);
        out.collations.push_back(raw.coll[i]);
    }
    return true;
}

// A unique index usable as an ON CONFLICT arbiter: arbiter-shaped and immediate.
bool usable_unique_index(Oid indexoid, ConflictTarget& out) {
    bool immediate = false;
    return arbiter_shaped_index(indexoid, out, immediate) && immediate;
}

std::vector<Oid> index_oids(Relation rel);

// INSERT ... ON CONFLICT (keys) takes every unique index on exactly those columns as an
// arbiter, whatever its collation or operator class. Another one that ON CONFLICT refuses
// (deferrable), or that compares the keys differently (rows the chosen index finds distinct
// could then collide in it: "cannot affect row a second time", or a unique violation on the
// direct path), is refused before any input is read.
void check_sibling_arbiters(Relation rel, const ConflictTarget& chosen) {
    std::map<AttrNumber, std::pair<Oid, Oid>> compare;  // attnum -> (=, collation)
    for (size_t i = 0; i < chosen.keys.size(); i++)
        compare[chosen.keys[i]] = {chosen.eq_operators[i], chosen.collations[i]};
    for (Oid idx : index_oids(rel)) {
        if (idx == chosen.index)
            continue;
        ConflictTarget other;
        bool immediate = false;
        if (!arbiter_shaped_index(idx, other, immediate) ||
            std::set<AttrNumber>(other.keys.begin(), other.keys.end()) !=
                std::set<AttrNumber>(chosen.keys.begin(), chosen.keys.end()))
            continue;
        if (!immediate)
            raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  format("unique index \"%s\" on the conflict columns (%s) of \"%s\" is "
                         "deferrable, which ON CONFLICT does not support",
                         other.index_name.c_str(), column_list(rel, chosen.keys).c_str(),
                         relname(rel).c_str()),
                  "ON CONFLICT takes every unique index on the conflict columns as an arbiter.",
                  "Make the index NOT DEFERRABLE, or drop it.");
        // Equal under both: the same "=", and collations that are the same or both
        // deterministic (those all compare equality byte-wise).
        const auto deterministic = [](Oid coll) {
            return !OidIsValid(coll) ||
                   pg_call([&] { return get_collation_isdeterministic(coll); });
        };
        // NULLS NOT DISTINCT matters only where a key column can be NULL.
        bool nullable = false;
        for (AttrNumber a : chosen.keys)
            nullable = nullable || !TupleDescAttr(RelationGetDescr(rel), a - 1)->attnotnull;
        bool same = !nullable || other.nulls_not_distinct == chosen.nulls_not_distinct;
        for (size_t i = 0; same && i < other.keys.size(); i++) {
            const auto& [eq, coll] = compare[other.keys[i]];
            same = eq == other.eq_operators[i] &&
                   (coll == other.collations[i] ||
                    (deterministic(coll) && deterministic(other.collations[i])));
        }
        if (!same)
            raise(ERRCODE_INVALID_COLUMN_REFERENCE,
                  format("unique indexes \"%s\" and \"%s\" on the conflict columns (%s) of "
                         "\"%s\" compare keys differently",
                         chosen.index_name.c_str(), other.index_name.c_str(),
                         column_list(rel, chosen.keys).c_str(), relname(rel).c_str()),
                  "Their collations, operator classes or NULLS NOT DISTINCT differ; ON CONFLICT "
                  "takes both as arbiters, and rows one finds distinct could collide in the "
                  "other.",
                  "Drop one of them, or load without ON_CONFLICT.");
    }
}

std::vector<Oid> index_oids(Relation rel) {
    std::vector<Oid> out;
    List* l = pg_call([&] { return RelationGetIndexList(rel); });
    ListCell* lc;
    foreach (lc, l)
        out.push_back(lfirst_oid(lc));
    return out;
}

// For a partitioned target: does some partition have a usable unique index on exactly these
// columns (by name)? Then the key is unique per partition only.
bool unique_only_in_partitions(Relation rel, const std::set<std::string>& names) {
    if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
        return false;
    List* parts = pg_call([&] { return find_all_inheritors(RelationGetRelid(rel), NoLock, NULL); });
    ListCell* lc;
    foreach (lc, parts) {
        Oid part = lfirst_oid(lc);
        if (part == RelationGetRelid(rel))
            continue;
        Relation prel = pg_call([&] { return RelationIdGetRelation(part); });
        if (!prel)
            continue;
        bool found = false;
        try {
            for (Oid idx : index_oids(prel)) {
                ConflictTarget t;
                if (!usable_unique_index(idx, t))
                    continue;
                std::set<std::string> cols;
                for (AttrNumber a : t.keys)
                    cols.insert(attname(prel, a));
                if (cols == names)
                    found = true;
            }
        } catch (...) {
            pg_call([&] { RelationClose(prel); });
            throw;
        }
        pg_call([&] { RelationClose(prel); });
        if (found)
            return true;
    }
    return false;
}

[[noreturn]] void not_enforced_across_partitions(Relation rel, const std::string& cols) {
    raise(ERRCODE_INVALID_COLUMN_REFERENCE,
          format("conflict columns (%s) are not unique across the partitions of \"%s\"",
                 cols.c_str(), relname(rel).c_str()),
          "A unique index exists on some partitions only, so a key could exist in two "
          "partitions at once.",
          "Create the unique index on the partitioned table itself; it must include the "
          "partition key columns.");
}

ConflictTarget find_conflict_target(const MergeSpec& spec) {
    Relation rel = spec.target;
    std::vector<ConflictTarget> candidates;
    for (Oid idx : index_oids(rel)) {
        ConflictTarget t;
        if (usable_unique_index(idx, t))
            candidates.push_back(std::move(t));
    }
    if (!spec.conflict_names.empty()) {
        std::set<AttrNumber> wanted;
        std::set<std::string> wanted_names;
        for (const std::string& n : spec.conflict_names) {
            if (!wanted.insert(find_column(rel, n)).second)
                raise(ERRCODE_SYNTAX_ERROR,
                      format("conflict column \"%s\" is named more than once", n.c_str()));
            wanted_names.insert(n);
        }
        for (ConflictTarget& t : candidates)
            if (std::set<AttrNumber>(t.keys.begin(), t.keys.end()) == wanted)
                return t;
        std::string cols;
        for (const std::string& n : spec.conflict_names)
            cols += (cols.empty() ? "" : ", ") + n;
        if (unique_only_in_partitions(rel, wanted_names))
            not_enforced_across_partitions(rel, cols);
        for (Oid idx : index_oids(rel)) {
            ConflictTarget t;
            bool immediate = true;
            if (arbiter_shaped_index(idx, t, immediate) && !immediate &&
                std::set<AttrNumber>(t.keys.begin(), t.keys.end()) == wanted)
                raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                      format("unique index \"%s\" on the conflict columns (%s) of \"%s\" is "
                             "deferrable, which ON CONFLICT does not support",
                             t.index_name.c_str(), cols.c_str(), relname(rel).c_str()),
                      {}, "Make it NOT DEFERRABLE, or name the columns of another unique index.");
        }
        raise(ERRCODE_INVALID_COLUMN_REFERENCE,
              format("there is no unique index on \"%s\" matching the conflict columns (%s)",
                     relname(rel).c_str(), cols.c_str()),
              {},
              "Name the columns of a primary key or of a non-partial, non-deferrable unique "
              "index (on plain columns) in CONFLICT_COLUMNS.");
    }
    // The primary key, found in pg_index: a deferrable one is no conflict target (ON CONFLICT
    // refuses it), and another unique index must not silently stand in for it (its key
    // columns would then be updated).
    Oid pk = InvalidOid;
    for (Oid idx : index_oids(rel)) {
        const bool primary = pg_call([&] {
            HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(idx));
            if (!HeapTupleIsValid(tup))
                return false;
            const bool is_pk = reinterpret_cast<Form_pg_index>(GETSTRUCT(tup))->indisprimary;
            ReleaseSysCache(tup);
            return is_pk;
        });
        if (primary)
            pk = idx;
    }
    for (ConflictTarget& t : candidates)
        if (t.index == pk)
            return t;
    if (OidIsValid(pk))
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
              format("the primary key of table \"%s\" cannot detect conflicts: it is deferrable",
                     relname(rel).c_str()),
              {},
              "Name the conflict columns of a non-deferrable unique index with "
              "CONFLICT_COLUMNS, or make the primary key NOT DEFERRABLE.");
    // Several unique indexes that all say the same (same columns, equality and collations, as
    // a duplicate index does) are one conflict target.
    const auto same_as_first = [&](const ConflictTarget& t) {
        const ConflictTarget& f = candidates.front();
        return t.keys == f.keys && t.eq_operators == f.eq_operators &&
               t.collations == f.collations && t.nulls_not_distinct == f.nulls_not_distinct;
    };
    if (!candidates.empty() && std::all_of(candidates.begin(), candidates.end(), same_as_first)) {
        for (size_t i = 1; i < candidates.size(); i++)
            candidates.front().equivalents.push_back(candidates[i].index);
        return candidates.front();
    }
    if (candidates.empty()) {
        raise(ERRCODE_INVALID_COLUMN_REFERENCE,
              format("table \"%s\" has no primary key or unique index to detect conflicts on",
                     relname(rel).c_str()),
              rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE
                  ? "A partitioned table needs the unique index on the table itself, not only "
                    "on its partitions."
                  : "",
              "Add a primary key or a unique index, or load without ON_CONFLICT.");
    }
    std::string names;
    for (ConflictTarget& t : candidates)
        names += (names.empty() ? "" : ", ") + ("\"" + t.index_name + "\"");
    raise(ERRCODE_INVALID_COLUMN_REFERENCE,
          format("table \"%s\" has no primary key and several unique indexes to detect "
                 "conflicts on",
                 relname(rel).c_str()),
          format("Unique indexes: %s.", names.c_str()),
          "Name the conflict columns with CONFLICT_COLUMNS.");
}

void check_column_privilege(Relation rel, AttrNumber attnum, AclMode mode) {
    pg_call([&] {
        // pg_attribute_aclcheck() looks at column grants only; the table grant covers all.
        if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), mode) != ACLCHECK_OK &&
            pg_attribute_aclcheck(RelationGetRelid(rel), attnum, GetUserId(), mode) != ACLCHECK_OK)
            aclcheck_error_col(ACLCHECK_NO_PRIV, get_relkind_objtype(rel->rd_rel->relkind),
                               RelationGetRelationName(rel),
                               NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname));
    });
}

bool identity_always(Relation rel, AttrNumber a) {
    return TupleDescAttr(RelationGetDescr(rel), a - 1)->attidentity == ATTRIBUTE_IDENTITY_ALWAYS;
}

}  // namespace

void check_schema_usage(Oid relid) {
    pg_call([&] {
        const Oid nsp = get_rel_namespace(relid);
        const AclResult usage = pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE);
        if (usage != ACLCHECK_OK)
            aclcheck_error(usage, OBJECT_SCHEMA, get_namespace_name(nsp));
    });
}

void check_access_before_lock(Oid relid, AclMode mode) {
    pg_call([&] {
        const Oid user = GetUserId();
        if (pg_class_aclcheck(relid, user, mode) != ACLCHECK_OK &&
            pg_attribute_aclcheck_all(relid, user, mode, ACLMASK_ANY) != ACLCHECK_OK)
            aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(get_rel_relkind(relid)),
                           get_rel_name(relid));
    });
    check_schema_usage(relid);
}

std::vector<std::string> split_identifiers(const std::string& value, const char* option) {
    std::vector<std::string> out;
    bool ok = false;
    List* names = NIL;
    pg_call([&] {
        char* copy = pstrdup(value.c_str());
        ok = SplitIdentifierString(copy, ',', &names);
    });
    if (!ok || names == NIL)
        raise(ERRCODE_INVALID_PARAMETER_VALUE,
              format("invalid %s value \"%s\"", option, value.c_str()), {},
              "Give a comma-separated list of column names; quote names that are not lower "
              "case, as in SQL.");
    ListCell* lc;
    foreach (lc, names)
        out.emplace_back(static_cast<const char*>(lfirst(lc)));
    return out;
}

ResolvedMerge resolve_merge(const MergeSpec& spec) {
    Relation rel = spec.target;
    ResolvedMerge r;
    // Every entry point opens the target by OID (a COPY's name was looked up already): the
    // schema's USAGE is checked here, as the user who writes (a job's owner in its worker).
    check_schema_usage(RelationGetRelid(rel));
    // As INSERT refuses it (the catalog's ACL gives nobody INSERT): before any input is read.
    if (pg_call([&] { return IsSystemRelation(rel); }) && !allowSystemTableMods)
        raise(ERRCODE_INSUFFICIENT_PRIVILEGE,
              format("permission denied for table %s", RelationGetRelationName(rel)),
              "It is a system catalog.");
    // The rows are applied by INSERT statements reading ingest._merge_rows() once: a rule
    // would rewrite them (INSERT ... ON CONFLICT refuses rules, and a DO ALSO rule reads the
    // rows a second time).
    for (int i = 0; rel->rd_rules && i < rel->rd_rules->numLocks; i++) {
        const CmdType event = rel->rd_rules->rules[i]->event;
        if (event == CMD_INSERT || event == CMD_UPDATE)
            raise(ERRCODE_FEATURE_NOT_SUPPORTED,
                  format("cannot load into \"%s\" because it has INSERT or UPDATE rules",
                         relname(rel).c_str()),
                  "The rows are applied as INSERT ... ON CONFLICT applies them, which rules cannot "
                  "rewrite.",
                  "Drop the rules (a trigger can do what they do), or load with plain COPY, "
                  "which ignores rules.");
    }
    if (spec.mode == ConflictMode::none) {
        // A plain append: no conflict target, nothing updated.
        if (!spec.conflict_names.empty() || !spec.update_names.empty())
            raise(ERRCODE_SYNTAX_ERROR,
                  "conflict columns and update columns cannot be used with conflict mode 'none'",
                  {}, "Conflict mode 'none' appends every row; give a conflict mode to merge.");
        for (AttrNumber a : spec.columns)
            check_column_privilege(rel, a, ACL_INSERT);
        return r;
    }
    r.target = find_conflict_target(spec);
    if (spec.mode == ConflictMode::upsert || spec.mode == ConflictMode::ignore)
        check_sibling_arbiters(rel, r.target);

    // Every key must come from the input: a defaulted key can never conflict.
    for (AttrNumber k : r.target.keys) {
        auto it = std::find(spec.columns.begin(), spec.columns.end(), k);
        if (it == spec.columns.end())
            raise(ERRCODE_INVALID_COLUMN_REFERENCE,
                  format("conflict column \"%s\" is not in the %s column list",
                         attname(rel, k).c_str(), spec.what.c_str()),
                  {}, "Include every conflict column in the column list.");
        r.key_positions.push_back(static_cast<int>(it - spec.columns.begin()));
    }
    auto is_key = [&](AttrNumber a) {
        return std::find(r.target.keys.begin(), r.target.keys.end(), a) != r.target.keys.end();
    };

    const bool updates = spec.mode == ConflictMode::upsert || spec.mode == ConflictMode::update;
    if (!spec.update_names.empty()) {
        if (!updates)
            raise(ERRCODE_SYNTAX_ERROR,
                  format("UPDATE_COLUMNS cannot be used with ON_CONFLICT '%s'",
                         conflict_mode_name(spec.mode)),
                  {}, "UPDATE_COLUMNS applies to the 'upsert' and 'update' modes only.");
        for (const std::string& n : spec.update_names) {
            AttrNumber a = find_column(rel, n);
            if (is_key(a))
                raise(ERRCODE_INVALID_COLUMN_REFERENCE,
                      format("column \"%s\" is a conflict column and cannot be updated", n.c_str()),
                      {}, "Remove conflict columns from UPDATE_COLUMNS.");
            if (identity_always(rel, a))
                raise(ERRCODE_GENERATED_ALWAYS,
                      format("column \"%s\" is an identity column GENERATED ALWAYS and cannot be "
                             "updated",
                             n.c_str()),
                      {}, "Remove it from UPDATE_COLUMNS; an existing row keeps its value.");
            if (std::find(spec.columns.begin(), spec.columns.end(), a) == spec.columns.end())
                raise(ERRCODE_INVALID_COLUMN_REFERENCE,
                      format("update column \"%s\" is not in the %s column list", n.c_str(),
                             spec.what.c_str()),
                      {}, "UPDATE_COLUMNS must be a subset of the loaded columns.");
            if (std::find(r.update_columns.begin(), r.update_columns.end(), a) !=
                r.update_columns.end())
                raise(ERRCODE_SYNTAX_ERROR,
                      format("update column \"%s\" is named more than once", n.c_str()));
            r.update_columns.push_back(a);
        }
    } else if (updates) {
        // As in UPDATE, an identity column GENERATED ALWAYS keeps the value it has.
        for (AttrNumber a : spec.columns)
            if (!is_key(a) && !identity_always(rel, a))
                r.update_columns.push_back(a);
    }
    if (spec.mode == ConflictMode::update && r.update_columns.empty())
        raise(ERRCODE_INVALID_COLUMN_REFERENCE,
              format("ON_CONFLICT 'update' needs at least one column besides the conflict "
                     "columns (%s)",
                     column_list(rel, r.target.keys).c_str()));

    // The caller's privileges, checked before any input is read: INSERT on every loaded
    // column, UPDATE on every updated one (the statements re-check them as they run).
    for (AttrNumber a : spec.columns)
        check_column_privilege(rel, a, ACL_INSERT);
    for (AttrNumber a : r.update_columns)
        check_column_privilege(rel, a, ACL_UPDATE);
    // ON CONFLICT (keys), and update mode's join, read the key columns, and upsert's
    // SET x = EXCLUDED.x reads x: SELECT on them, as the statements need.
    if (spec.mode != ConflictMode::strict)
        for (AttrNumber k : r.target.keys)
            check_column_privilege(rel, k, ACL_SELECT);
    if (spec.mode == ConflictMode::upsert)
        for (AttrNumber a : r.update_columns)
            check_column_privilege(rel, a, ACL_SELECT);
    return r;
}

}  // namespace pg_ingest
