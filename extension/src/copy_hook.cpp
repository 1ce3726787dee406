// COPY ... FROM ... WITH (ON_CONFLICT 'mode', ...): a ProcessUtility hook that takes over COPY
// FROM when one of our options is present, parses the input with PostgreSQL's own COPY
// machinery (BeginCopyFrom / NextCopyFrom, so every ordinary option works) and applies the
// rows through the merge engine. Every other statement goes straight to the next hook.
#include "copy_hook.hpp"

#include "conflict_target.hpp"
#include "guc.hpp"
#include "merge.hpp"
#include "parallel_parse.hpp"
#include "session_stats.hpp"

extern "C" {
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "commands/copy.h"
#include "commands/copyfrom_internal.h"
#include "commands/extension.h"
#include "commands/progress.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/backend_progress.h"
#include "utils/builtins.h"
#include "utils/rel.h"
}

#include <algorithm>
#include <optional>

namespace pg_ingest::copy_hook {

namespace {

ProcessUtility_hook_type prev_hook = nullptr;

bool is_ours(const char* defname) {
    return strcmp(defname, "on_conflict") == 0 || strcmp(defname, "conflict_columns") == 0 ||
           strcmp(defname, "update_columns") == 0 || strcmp(defname, "on_error") == 0;
}

// Plain C on the hot path of every utility statement: no allocation, no exceptions.
bool wants_us(Node* stmt) {
    if (!IsA(stmt, CopyStmt))
        return false;
    ListCell* lc;
    foreach (lc, reinterpret_cast<CopyStmt*>(stmt)->options) {
        DefElem* d = lfirst_node(DefElem, lc);
        if (is_ours(d->defname))
            return true;
    }
    return false;
}

struct Options {
    std::optional<std::string> on_conflict, conflict_columns, update_columns, on_error;
    bool binary = false;
    bool freeze = false;
    List* copy_options = NIL;  // the ordinary COPY options, for BeginCopyFrom
};

Options split_options(ParseState* pstate, CopyStmt* stmt) {
    Options o;
    ListCell* lc;
    foreach (lc, stmt->options) {
        DefElem* d = lfirst_node(DefElem, lc);
        if (!is_ours(d->defname)) {
            o.copy_options = pg_call([&] { return lappend(o.copy_options, d); });
            if (strcmp(d->defname, "format") == 0) {
                std::string f = pg_call([&] { return defGetString(d); });
                o.binary = f == "binary";
            }
            if (strcmp(d->defname, "freeze") == 0)
                o.freeze = pg_call([&] { return defGetBoolean(d); });
            continue;
        }
        std::optional<std::string>* slot =
            strcmp(d->defname, "on_conflict") == 0        ? &o.on_conflict
            : strcmp(d->defname, "conflict_columns") == 0 ? &o.conflict_columns
            : strcmp(d->defname, "update_columns") == 0   ? &o.update_columns
                                                          : &o.on_error;
        if (slot->has_value())
            pg_call([&] { errorConflictingDefElem(d, pstate); });
        // COPY's grammar also takes a parenthesised list or a number as an option value; ours
        // are strings (a list would read as "a.b").
        if (d->arg == nullptr || !IsA(d->arg, String))
            raise(ERRCODE_SYNTAX_ERROR,
                  format("COPY option \"%s\" takes a string value", d->defname), {},
                  strcmp(d->defname, "conflict_columns") == 0 ||
                          strcmp(d->defname, "update_columns") == 0
                      ? "Give the columns as one string, as in 'a, b'."
                      : "Quote the value, as in 'upsert' or 'ignore'.");
        *slot = std::string(pg_call([&] { return defGetString(d); }));
    }
    return o;
}

// Reads rows with PostgreSQL's COPY FROM parser.
class CopySource : public RowSource {
  public:
    // `where`: COPY's WHERE condition as an implicit-AND list (NIL: none).
    // `parallel`: from the ingest.copy_parse_min_rows-th row on, convert through a
    // parallel_parse::Reader (parallel_parse::eligible() said yes).
    CopySource(CopyFromState cstate, Relation rel, const std::vector<AttrNumber>& cols, List* where,
               bool ignore_errors, bool parallel, MergeCounts& counts)
        : m_cstate(cstate), m_cols(cols), m_ignore(ignore_errors), m_counts(counts) {
        const int natts = RelationGetDescr(rel)->natts;
        m_rel = rel;
        m_parallel_ok = parallel;
        m_cxt = CurrentMemoryContext;
        if (where != NIL) {
            pg_call([&] {
                m_estate = CreateExecutorState();
                m_where = ExecPrepareQual(where, m_estate);
                m_where_slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
            });
        }
        m_all_values.resize(natts);
        m_all_nulls.reset(new bool[natts]);
        m_values.resize(cols.size());
        m_nulls.reset(new bool[cols.size()]);
        m_econtext = pg_call([] { return CreateStandaloneExprContext(); });
        m_parse_cxt = pg_call([] {
            return AllocSetContextCreate(CurrentMemoryContext, "pg_ingest COPY row",
                                         ALLOCSET_DEFAULT_SIZES);
        });
        // Columns left out of the column list get their defaults from the INSERT, once, as
        // with INSERT ... ON CONFLICT; COPY must not evaluate them (nextval() twice).
        m_cstate->num_defaults = 0;
    }

    bool next(SourceRow& row) override {
        for (;;) {
            bool got = false;
            if (!m_ignore) {
                got = read_row(row.accepts_formed);
            } else {
                try {
                    with_subtransaction([&] { got = read_row(row.accepts_formed); });
                } catch (const PgError& e) {
                    // Bad data (22), or a domain's CHECK / NOT NULL (23) raised by its input
                    // function; the conflict index cannot fire while parsing.
                    const int category = ERRCODE_TO_CATEGORY(e.sqlerrcode());
                    if (category != ERRCODE_TO_CATEGORY(ERRCODE_DATA_EXCEPTION) &&
                        category != ERRCODE_TO_CATEGORY(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION))
                        throw;
                    // A HEADER MATCH mismatch is about the whole input, not a row.
                    if (m_cstate->opts.header_line != COPY_HEADER_FALSE &&
                        m_cstate->cur_lineno == 1)
                        throw;
                    // Only a line that was read whole can be skipped. An error while reading
                    // it (a bare carriage return, an invalid byte sequence) leaves the input
                    // where it was, so it would repeat forever: it fails the COPY.
                    if (!m_cstate->line_buf_valid)
                        throw;
                    RejectedRow r;
                    r.line_number = static_cast<int64_t>(m_cstate->cur_lineno);
                    if (!m_cstate->opts.binary && m_cstate->line_buf.data)
                        r.raw_line.assign(m_cstate->line_buf.data, m_cstate->line_buf.len);
                    r.sqlstate = unpack_sql_state(e.sqlerrcode());
                    r.message = e.what();
                    e.release();
                    // The parser clears these only after a good field: stale, they would name
                    // the skipped row's column (in a buffer that may since have moved) in the
                    // next error's context.
                    m_cstate->cur_attname = NULL;
                    m_cstate->cur_attval = NULL;
                    m_counts.rejected++;
                    session::add_reject(std::move(r));
                    pg_call([] { CHECK_FOR_INTERRUPTS(); });
                    continue;
                }
            }
            if (!got)
                return false;
            row.formed = m_formed;  // a row a parse worker converted, already formed
            if (!m_formed) {
                for (size_t i = 0; i < m_cols.size(); i++) {
                    m_values[i] = m_all_values[m_cols[i] - 1];
                    m_nulls[i] = m_all_nulls[m_cols[i] - 1];
                }
                row.values = m_values.data();
                row.nulls = m_nulls.get();
            }
            if (m_parallel) {
                // The reader is ahead of this row; its line is not in line_buf.
                row.line_number = m_line;
                row.raw = nullptr;
                row.raw_len = 0;
                return true;
            }
            row.line_number = static_cast<int64_t>(m_cstate->cur_lineno);
            row.raw = m_cstate->opts.binary ? nullptr : m_cstate->line_buf.data;
            row.raw_len = m_cstate->opts.binary ? 0 : m_cstate->line_buf.len;
            return true;
        }
    }

    void close() {
        pg_call([&] {
            EndCopyFrom(m_cstate);
            FreeExprContext(m_econtext, true);
            if (m_where_slot)
                ExecDropSingleTupleTableSlot(m_where_slot);
            if (m_estate)
                FreeExecutorState(m_estate);
        });
    }

  private:
    // The row's values live until the next call: the caller copies them before asking again,
    // and rows skipped under ON_ERROR 'ignore' leave nothing behind. Rows that COPY's WHERE
    // filters out are passed over here, as COPY does: not loaded and not counted. A row whose
    // WHERE fails (say, a division by zero) is a bad row like one that fails conversion.
    int64 m_processed = 0;  // rows read, and filtered out by WHERE, for pg_stat_progress_copy
    int64 m_excluded = 0;
    bool read_row(bool accepts_formed) {
        // The workers' rows come formed for the merge's sort (SourceRow::formed).
        if (m_parallel_ok && accepts_formed && m_processed >= guc::copy_parse_min_rows)
            start_parallel();
        if (m_parallel)
            return read_row_parallel();
        return pg_call([&] {
            MemoryContextReset(m_parse_cxt);
            MemoryContext old = MemoryContextSwitchTo(m_parse_cxt);
            // Errors name the line and column, as plain COPY's do.
            ErrorContextCallback cb;
            cb.callback = CopyFromErrorCallback;
            cb.arg = m_cstate;
            cb.previous = error_context_stack;
            error_context_stack = &cb;
            bool ok;
            for (;;) {
                ok = NextCopyFrom(m_cstate, m_econtext, m_all_values.data(), m_all_nulls.get());
                if (!ok || !m_where || passes_where())
                    break;
                // pg_stat_progress_copy, as plain COPY reports it (rows read here: they are
                // applied after the whole input is read).
                pgstat_progress_update_param(PROGRESS_COPY_TUPLES_EXCLUDED, ++m_excluded);
                MemoryContextReset(m_parse_cxt);
                CHECK_FOR_INTERRUPTS();
            }
            if (ok)
                pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, ++m_processed);
            error_context_stack = cb.previous;
            MemoryContextSwitchTo(old);
            return ok;
        });
    }

    // The rest of the input through a parallel_parse::Reader, if a worker can be had; the
    // rows so far were read here, one at a time, exactly as without.
    void start_parallel() {
        m_parallel_ok = false;
        // The caller reads in a per-row memory context; the reader lives for the COPY.
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        std::unique_ptr<parallel_parse::Reader> r;
        try {
            r = std::make_unique<parallel_parse::Reader>(m_cstate, m_rel, m_cols);
        } catch (...) {
            MemoryContextSwitchTo(old);
            throw;
        }
        MemoryContextSwitchTo(old);
        if (r->start())
            m_parallel = std::move(r);
    }

    // No WHERE here (parallel_parse::eligible()).
    bool read_row_parallel() {
        pg_call([&] { MemoryContextReset(m_parse_cxt); });
        int64_t line = 0;
        m_formed = nullptr;
        if (!m_parallel->next(m_all_values.data(), m_all_nulls.get(), &line, &m_formed))
            return false;
        m_line = line;
        pg_call([&] {
            pgstat_progress_update_param(PROGRESS_COPY_TUPLES_PROCESSED, ++m_processed);
            CHECK_FOR_INTERRUPTS();
        });
        return true;
    }

    // Inside pg_call. Columns outside the column list are NULL here (their defaults come
    // later, from the merge's INSERT): the filter may only name loaded columns.
    bool passes_where() {
        const int natts = m_where_slot->tts_tupleDescriptor->natts;
        ExecClearTuple(m_where_slot);
        std::copy_n(m_all_values.data(), natts, m_where_slot->tts_values);
        std::copy_n(m_all_nulls.get(), natts, m_where_slot->tts_isnull);
        ExecStoreVirtualTuple(m_where_slot);
        ExprContext* econtext = GetPerTupleExprContext(m_estate);
        econtext->ecxt_scantuple = m_where_slot;
        const bool pass = ExecQual(m_where, econtext);
        ResetExprContext(econtext);
        return pass;
    }

    CopyFromState m_cstate;
    MemoryContext m_parse_cxt = nullptr;
    std::vector<AttrNumber> m_cols;
    bool m_ignore;
    MergeCounts& m_counts;
    ExprContext* m_econtext = nullptr;
    EState* m_estate = nullptr;  // for the WHERE condition
    ExprState* m_where = nullptr;
    TupleTableSlot* m_where_slot = nullptr;
    std::vector<Datum> m_all_values;
    std::unique_ptr<bool[]> m_all_nulls;
    std::vector<Datum> m_values;
    std::unique_ptr<bool[]> m_nulls;
    Relation m_rel = nullptr;
    MemoryContext m_cxt = nullptr;  // lives for the COPY
    bool m_parallel_ok = false;     // may still start a parallel reader
    std::unique_ptr<parallel_parse::Reader> m_parallel;
    int64_t m_line = 0;               // the parallel reader's row's line
    MinimalTuple m_formed = nullptr;  // or the row as the merge sorts it
};

void check_file_access(const CopyStmt* stmt) {
    if (!stmt->filename)
        return;
    pg_call([&] {
        if (stmt->is_program) {
            if (!has_privs_of_role(GetUserId(), ROLE_PG_EXECUTE_SERVER_PROGRAM))
                ereport(ERROR,
                        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                         errmsg("permission denied to COPY from an external program"),
                         errdetail("Only roles with privileges of the "
                                   "\"pg_execute_server_program\" role may COPY from a program."),
                         errhint("Anyone can COPY FROM STDIN.")));
        } else if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES)) {
            ereport(ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                     errmsg("permission denied to COPY from a file"),
                     errdetail("Only roles with privileges of the \"pg_read_server_files\" role "
                               "may COPY from a file."),
                     errhint("Anyone can COPY FROM STDIN, e.g. psql's \\copy.")));
        }
    });
}

// COPY ... WHERE, prepared as COPY prepares it. The merge's INSERT fills in defaults after the
// filter, so the condition may refer only to the loaded columns (plain COPY sees defaults).
List* transform_where(ParseState* pstate, Relation rel, Node* raw, const MergeSpec& spec) {
    Bitmapset* attrs = nullptr;
    List* where = pg_call([&] {
        ParseNamespaceItem* nsitem =
            addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
        addNSItemToQuery(pstate, nsitem, false, true, true);
        Node* w = transformExpr(pstate, raw, EXPR_KIND_COPY_WHERE);
        w = coerce_to_boolean(pstate, w, "WHERE");
        assign_expr_collations(pstate, w);
        w = eval_const_expressions(NULL, w);
        w = reinterpret_cast<Node*>(canonicalize_qual(reinterpret_cast<Expr*>(w), false));
        pull_varattnos(w, 1, &attrs);
        return make_ands_implicit(reinterpret_cast<Expr*>(w));
    });
    // First as plain COPY refuses them, with its SQLSTATE: generated columns, by name or
    // through the whole row.
    TupleDesc desc = RelationGetDescr(rel);
    int member = -1;
    while ((member = bms_next_member(attrs, member)) >= 0) {
        const AttrNumber attnum = member + FirstLowInvalidHeapAttributeNumber;
        if (attnum < 0)
            continue;
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            if (att->attisdropped || !att->attgenerated || (attnum > 0 && att->attnum != attnum))
                continue;
            raise(ERRCODE_INVALID_COLUMN_REFERENCE,
                  "generated columns are not supported in COPY FROM WHERE conditions",
                  format("Column \"%s\" is a generated column.", NameStr(att->attname)), {});
        }
    }
    member = -1;
    while ((member = bms_next_member(attrs, member)) >= 0) {
        const AttrNumber attnum = member + FirstLowInvalidHeapAttributeNumber;
        if (attnum <= 0)
            raise(ERRCODE_FEATURE_NOT_SUPPORTED,
                  "COPY ... ON_CONFLICT WHERE cannot refer to system columns or the whole row", {},
                  "Name the loaded columns in the condition.");
        if (std::find(spec.columns.begin(), spec.columns.end(), attnum) == spec.columns.end())
            raise(ERRCODE_FEATURE_NOT_SUPPORTED,
                  format("COPY ... ON_CONFLICT WHERE cannot refer to column \"%s\", which is not "
                         "loaded",
                         NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname)),
                  "Its default (or generated value) is only computed when the row is written, "
                  "after the filter.",
                  "Add the column to the COPY column list, or leave it out of WHERE.");
    }
    return where;
}

uint64 run_copy_on_conflict(PlannedStmt* pstmt, const char* query, bool read_only_tree) {
    CopyStmt* stmt = reinterpret_cast<CopyStmt*>(pstmt->utilityStmt);
    if (read_only_tree)
        stmt = pg_call([&] { return static_cast<CopyStmt*>(copyObjectImpl(stmt)); });
    ParseState* pstate = pg_call([&] {
        ParseState* p = make_parsestate(NULL);
        p->p_sourcetext = query;
        return p;
    });
    session::begin_copy(GetUserId());
    Options opts = split_options(pstate, stmt);

    if (!opts.on_conflict)
        raise(ERRCODE_SYNTAX_ERROR,
              "CONFLICT_COLUMNS, UPDATE_COLUMNS and ON_ERROR need ON_CONFLICT", {},
              "Add ON_CONFLICT 'upsert', 'update', 'ignore' or 'strict'.");
    if (!stmt->is_from || stmt->query)
        raise(ERRCODE_FEATURE_NOT_SUPPORTED, "ON_CONFLICT is only valid for COPY FROM", {},
              "COPY TO exports rows; there is nothing to conflict with.");
    if (opts.freeze)
        raise(ERRCODE_FEATURE_NOT_SUPPORTED, "FREEZE cannot be used with ON_CONFLICT", {},
              "Frozen rows can only be written into a table created or truncated in the same "
              "transaction, where there is nothing to conflict with.");

    // The library is loaded for the whole cluster; the statements it runs need the extension's
    // objects in this database.
    if (!OidIsValid(pg_call([] { return get_extension_oid("pg_ingest", true); })))
        raise(ERRCODE_FEATURE_NOT_SUPPORTED,
              "COPY ... ON_CONFLICT needs the pg_ingest extension in this database", {},
              "Run CREATE EXTENSION pg_ingest in this database.");

    MergeSpec spec;
    spec.mode = parse_conflict_mode(*opts.on_conflict);
    if (opts.on_error) {
        if (pg_strcasecmp(opts.on_error->c_str(), "ignore") == 0)
            spec.ignore_errors = true;
        else if (pg_strcasecmp(opts.on_error->c_str(), "stop") != 0)
            raise(ERRCODE_INVALID_PARAMETER_VALUE,
                  format("unknown ON_ERROR value \"%s\"", opts.on_error->c_str()), {},
                  "Use 'stop' (the default) or 'ignore'.");
    }
    if (spec.ignore_errors && opts.binary)
        raise(ERRCODE_FEATURE_NOT_SUPPORTED, "ON_ERROR 'ignore' cannot be used with FORMAT binary",
              "Binary input cannot find the next row after a bad one.",
              "Use FORMAT text or csv, or ON_ERROR 'stop'.");
    if (opts.conflict_columns)
        spec.conflict_names = split_identifiers(*opts.conflict_columns, "CONFLICT_COLUMNS");
    if (opts.update_columns)
        spec.update_names = split_identifiers(*opts.update_columns, "UPDATE_COLUMNS");
    check_file_access(stmt);

    Relation rel = pg_call([&] {
        PreventCommandIfParallelMode("COPY FROM");
        return table_openrv(stmt->relation, RowExclusiveLock);
    });
    const char kind = rel->rd_rel->relkind;
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
        raise(ERRCODE_WRONG_OBJECT_TYPE,
              format("cannot COPY ON CONFLICT into \"%s\": it is not a table",
                     RelationGetRelationName(rel)),
              kind == RELKIND_VIEW || kind == RELKIND_MATVIEW
                  ? "Views have no unique index to detect conflicts on."
                  : (kind == RELKIND_FOREIGN_TABLE
                         ? "Foreign tables have no unique index to detect conflicts on."
                         : ""),
              "Load into the underlying table.");
    if (XactReadOnly && !rel->rd_islocaltemp)
        pg_call([] { PreventCommandIfReadOnly("COPY FROM"); });

    List* attnums =
        pg_call([&] { return CopyGetAttnums(RelationGetDescr(rel), rel, stmt->attlist); });
    ListCell* lc;
    foreach (lc, attnums)
        spec.columns.push_back(static_cast<AttrNumber>(lfirst_int(lc)));
    spec.target = rel;
    spec.what = "COPY";
    // The conflict target, columns and privileges, before reading input.
    const ResolvedMerge resolved = resolve_merge(spec);

    List* where = stmt->whereClause ? transform_where(pstate, rel, stmt->whereClause, spec) : NIL;

    MergeCounts parse_counts;
    CopyFromState cstate = pg_call([&] {
        // NULL: COPY's own WHERE is applied by CopyFrom(), which the merge does not use.
        return BeginCopyFrom(pstate, rel, NULL, stmt->filename, stmt->is_program, NULL,
                             stmt->attlist, opts.copy_options);
    });
    const bool parallel = parallel_parse::eligible(rel, spec.columns, resolved.target.lt_operators,
                                                   where != NIL, opts.binary, spec.ignore_errors);
    CopySource source(cstate, rel, spec.columns, where, spec.ignore_errors, parallel, parse_counts);
    MergeCounts counts =
        run_merge(spec, source, [](RejectedRow&& r) { session::add_reject(std::move(r)); });
    source.close();
    counts.rejected += parse_counts.rejected;
    session::finish_copy(counts);
    if (const uint64_t not_kept = session::rejects_not_kept(); not_kept > 0)
        pg_call([&] {
            ereport(NOTICE,
                    (errcode(ERRCODE_WARNING),
                     errmsg("%llu of the %llu rejected rows are counted but not listed by "
                            "ingest.last_copy_rejects()",
                            (unsigned long long)not_kept, (unsigned long long)counts.rejected),
                     errhint("Raise ingest.copy_rejects_kept (now %d) to keep more of them.",
                             guc::copy_rejects_kept)));
        });
    pg_call([&] {
        table_close(rel, NoLock);
        free_parsestate(pstate);
    });
    return static_cast<uint64>(counts.written());
}

}  // namespace

void init() {
    prev_hook = ProcessUtility_hook;
    ProcessUtility_hook = process_utility;
    // COPY ... ON_CONFLICT ends the hook chain here (no hook below could run it). A library
    // loaded before this one hooks in below us and never sees it; one loaded after sees it.
    if (prev_hook != nullptr)
        pg_call([] {
            ereport(LOG,
                    (errcode(ERRCODE_WARNING),
                     errmsg("pg_ingest is loaded after another library that hooks utility "
                            "statements, which will not see COPY ... ON_CONFLICT"),
                     errdetail("Statement statistics or audit logging by that library (for "
                               "instance pg_stat_statements or pgaudit) leave these COPYs out."),
                     errhint("List pg_ingest first in shared_preload_libraries.")));
        });
}

// From its start on this is the session's last COPY ON CONFLICT. One that fails leaves no
// results: neither counts nor the rows it rejected before it failed (nothing of it is loaded).
static uint64 copy_on_conflict(PlannedStmt* pstmt, const char* query, bool read_only_tree) {
    try {
        return run_copy_on_conflict(pstmt, query, read_only_tree);
    } catch (...) {
        session::begin_copy(GetUserId());
        throw;
    }
}

}  // namespace pg_ingest::copy_hook

extern "C" void pg_ingest::copy_hook::process_utility(
    PlannedStmt* pstmt, const char* query, bool read_only_tree, ProcessUtilityContext context,
    ParamListInfo params, QueryEnvironment* query_env, DestReceiver* dest, QueryCompletion* qc) {
    if (wants_us(pstmt->utilityStmt)) {
        const uint64 written =
            pg_ingest::guard([&] { return copy_on_conflict(pstmt, query, read_only_tree); });
        if (qc)
            SetQueryCompletion(qc, CMDTAG_COPY, written);
        return;
    }
    if (prev_hook)
        prev_hook(pstmt, query, read_only_tree, context, params, query_env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, query_env, dest, qc);
    // After it ran: a DISCARD ALL that PostgreSQL refused (in a transaction block, in a
    // function) changes nothing.
    if (IsA(pstmt->utilityStmt, DiscardStmt) &&
        reinterpret_cast<DiscardStmt*>(pstmt->utilityStmt)->target == DISCARD_ALL)
        pg_ingest::guard([] { pg_ingest::session::forget(); });
}
