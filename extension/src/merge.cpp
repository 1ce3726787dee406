// The merge engine (see merge.hpp for the design).
#include "merge.hpp"

#include "conflict_target.hpp"
#include "merge_direct.hpp"
#include "merge_sql.hpp"
#include "merge_superseded.hpp"
#include "guc.hpp"

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

namespace {

// Upsert counts the rows that took the DO UPDATE path through ingest._merge_note_conflict().
int64_t g_conflicts = 0;

class MergeRun;
std::vector<MergeRun*> g_active;  // merges running in this backend, innermost last

instr_time now() {
    instr_time t;
    INSTR_TIME_SET_CURRENT(t);
    return t;
}

double elapsed_ms(instr_time a, instr_time b) {
    INSTR_TIME_SUBTRACT(b, a);
    return INSTR_TIME_GET_MILLISEC(b);
}

extern "C" {
// Plain C, cannot fail: the executor that took a served chunk is shutting down normally.
static void forget_served(Datum arg) {
    *reinterpret_cast<Tuplestorestate**>(DatumGetPointer(arg)) = nullptr;
}

// No merge outlives its statement, so none is running when a top-level transaction ends. A
// MergeRun whose destructor an error skipped would otherwise stay in g_active, where
// ingest._merge_rows() could reach it. clear() does not allocate or throw.
static void merge_xact_callback(XactEvent event, void*) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
        g_active.clear();
}
}

class MergeRun {
  public:
    MergeRun(const MergeSpec& spec, ResolvedMerge resolved, const RejectSink& on_reject)
        : m_spec(spec), m_res(std::move(resolved)), m_on_reject(on_reject) {
        m_cxt = pg_call([] {
            return AllocSetContextCreate(CurrentMemoryContext, "pg_ingest merge",
                                         ALLOCSET_DEFAULT_SIZES);
        });
        m_row_cxt = pg_call([&] {
            return AllocSetContextCreate(m_cxt, "pg_ingest merge row", ALLOCSET_DEFAULT_SIZES);
        });
        m_chunk_cxt = pg_call([&] {
            return AllocSetContextCreate(m_cxt, "pg_ingest merge chunk", ALLOCSET_DEFAULT_SIZES);
        });
        g_active.push_back(this);
        m_handle = static_cast<int>(g_active.size() - 1);
    }
    ~MergeRun() {
        if (!g_active.empty() && g_active.back() == this)
            g_active.pop_back();
        // The sort's temp files belong to the resource owner: on success run() closed them
        // with tuplesort_end(), on error the transaction abort does. Memory goes with m_cxt
        // (MemoryContextDelete does not ereport).
        MemoryContextDelete(m_cxt);
    }
    MergeRun(const MergeRun&) = delete;
    MergeRun& operator=(const MergeRun&) = delete;

    MergeCounts run(RowSource& source) {
        build_descriptors();
        const instr_time t0 = now();
        if (m_spec.mode == ConflictMode::none) {
            append_all(source);
            return m_counts;
        }
        if (guc::direct_apply) {
            const char* refusal = direct_apply_refusal(m_spec);
            m_try_direct = refusal == nullptr;
            m_path = refusal ? std::string("statement: ") + refusal : "direct";
        }
        load(source);
        const instr_time t1 = now();
        apply_all();
        const instr_time t2 = now();
        pg_call([&] {
            elog(DEBUG1,
                 "pg_ingest merge into %s: read and sorted in %.1f ms, applied in %.1f ms (%s)",
                 RelationGetRelationName(m_spec.target), elapsed_ms(t0, t1), elapsed_ms(t1, t2),
                 m_path.c_str());
        });
        pg_call([&] { tuplesort_end(m_sort); });
        m_sort = nullptr;
        return m_counts;
    }

    // ingest._merge_rows(handle): hand the current chunk to the executor.
    void serve(FunctionCallInfo fcinfo);

  private:
    const MergeSpec& m_spec;
    ResolvedMerge m_res;
    const RejectSink& m_on_reject;
    MemoryContext m_cxt = nullptr;
    MemoryContext m_row_cxt = nullptr;
    MemoryContext m_chunk_cxt = nullptr;  // kept rows of the current chunk (ignore mode)
    int m_handle = -1;
    int m_guc_nestlevel = 0;
    MergeCounts m_counts;

    TupleDesc m_sort_desc = nullptr;   // source columns, seq int8 [, raw text]
    TupleDesc m_chunk_desc = nullptr;  // source columns, group size int8, seq int8
    Tuplesortstate* m_sort = nullptr;
    int m_ncols = 0;
    std::vector<int> m_first_positions;  // source positions not overwritten on conflict

    // The chunk being applied: rows for the executor, and (ignore mode) what is needed to
    // retry row by row and report rejects.
    Tuplestorestate* m_chunk = nullptr;
    // The chunk the statement's function scan took (serve()), until the statement returns: the
    // scan frees it when it ends, but not when the statement fails, and a store that spilled
    // keeps a temp file that a commit would report leaked.
    Tuplestorestate* m_served = nullptr;
    int64_t m_chunk_groups = 0;
    int64_t m_chunk_rows = 0;
    // ON_ERROR 'ignore': what a retry row by row needs, kept in tuplestores (rows in the
    // sort's format: source columns, line number, raw line), which spill to disk past work_mem
    // as the sort does, so that neither wide rows nor a hot key pile up in memory.
    struct Kept {
        int64_t group_rows;
        // When the group has several rows: how many, as the next rows of m_members. If the
        // combined row fails, they are applied one at a time in input order, as the rows
        // would be without grouping.
        int64_t members;
        // A superseded row of the group failed its checks (SupersededCheck): the group is
        // applied one row at a time, whatever its winner does.
        bool replay = false;
    };
    std::vector<Kept> m_kept;                // per group of the chunk, in chunk order
    Tuplestorestate* m_kept_rows = nullptr;  // per group, its combined (winning) row
    // Every row of the chunk's groups of several rows, as the sort gave them, group after group.
    Tuplestorestate* m_members = nullptr;
    int64_t m_group_members = 0;  // rows of the group being read, in m_members
    bool m_group_replay = false;  // the group being read must be replayed (Kept::replay)
    bool m_chunk_replay = false;  // some group of the chunk must be
    std::unique_ptr<SupersededCheck> m_superseded;
    MemoryContext m_apply_cxt = nullptr;  // one apply_one() call's rows (in m_chunk_cxt)
    SPIPlanPtr m_plan = nullptr;
    UpsertCounting m_counting = UpsertCounting::conflicts;
    bool m_try_direct = false;  // direct_apply_refusal() said yes
    int64_t m_loaded_rows = 0;
    int64_t m_chunk_limit = 0;  // groups per chunk
    // The target has statement-level triggers or transition tables: INSERT ... ON CONFLICT
    // fires them once per statement, so (unless ON_ERROR 'ignore') every row goes through one
    // statement, and a merge with no rows still runs it once, as COPY and INSERT do.
    bool m_statement_triggers = false;
    int64_t m_statements_run = 0;
    // Set while the merge's own statement runs and has not taken its chunk: serve() hands the
    // chunk out only then, once. ingest._merge_rows() is callable by everyone (the statement
    // runs as the user), and a user's function (a default, a CHECK, a trigger) could call it at
    // any other time and free the chunk under the direct path or the chunk being filled.
    bool m_serve_armed = false;
    std::unique_ptr<DirectApply> m_direct;  // set while chunks bypass the statement
    // The row error a direct chunk failed with (its line, SQLSTATE, message and detail): the
    // statement that redoes the chunk names that line when it fails with the same error, as
    // the statement itself cannot tell which of its rows failed.
    struct DirectFailure {
        int64_t line = 0;
        int sqlerrcode = 0;
        std::string message, detail;
    } m_direct_failure;
    std::string m_path = "statement";  // how chunks were applied, for DEBUG1

    bool dedupes() const {
        return m_spec.mode != ConflictMode::strict && m_spec.mode != ConflictMode::none;
    }
    bool last_wins() const {
        return m_spec.mode == ConflictMode::upsert || m_spec.mode == ConflictMode::update;
    }
    bool keeps_raw() const { return m_spec.ignore_errors; }
    bool keeps_groups() const { return m_spec.ignore_errors && dedupes(); }
    void add_member(TupleTableSlot* row);
    void replay_members(int64_t n, TupleTableSlot* slot, MemoryContext row_cxt);
    // Closes the chunk a failed statement took (see m_served).
    void end_served() {
        if (m_served)
            tuplestore_end(m_served);
        m_served = nullptr;
    }
    // Closes m_kept_rows and m_members, and their temp files if they spilled (where
    // PostgreSQL may ereport).
    void end_kept() {
        for (Tuplestorestate** ts : {&m_kept_rows, &m_members}) {
            if (*ts)
                tuplestore_end(*ts);
            *ts = nullptr;
        }
    }
    void chunk_row_from(TupleTableSlot* row, int64_t group_rows, MemoryContext cxt,
                        MinimalTuple& tuple, int64_t& seq, const char*& raw, size_t& raw_len);
    bool apply_one(MinimalTuple tuple, int64_t group_rows, int64_t seq, const std::string& raw,
                   bool report);

    void build_descriptors();
    void load(RowSource& source);
    void apply_all();
    void append_all(RowSource& source);
    void begin_apply();
    void begin_statement();
    void flush_direct_chunk();
    void end_apply();
    void add_row(const Datum* values, const bool* nulls, int64_t group_rows, int64_t seq,
                 const char* raw, int raw_len);
    void prepare_statement();
    void start_chunk();
    void add_to_chunk(TupleTableSlot* leader, TupleTableSlot* first, int64_t group_rows);
    void flush_chunk();
    struct ChunkResult {
        int64_t processed;  // rows the statement wrote (or updated rows' input count)
        int64_t conflicts;  // upsert: groups that took DO UPDATE
    };
    ChunkResult execute_chunk(int64_t groups);
    void count(const ChunkResult& r, int64_t groups, int64_t rows);
    void retry_rows_one_by_one();
    // Checks a row that loses to another row of its key (SupersededCheck): throws with
    // ON_ERROR 'stop'; with 'ignore' marks its group for a one-row-at-a-time replay.
    void check_superseded(TupleTableSlot* row, bool applied_mix = false);
    void rewrite_context(const PgError& e) const;
    bool rejectable(const PgError& e) const;
    bool is_arbiter_violation(const PgError& e) const;
};

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
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        m_sort = tuplesort_begin_heap(m_sort_desc, nkeys, attnums.data(), ops.data(), colls.data(),
                                      nf.get(), work_mem, NULL, TUPLESORT_NONE);
        slot = MakeSingleTupleTableSlot(m_sort_desc, &TTSOpsVirtual);
        MemoryContextSwitchTo(old);
    });

    Datum* values = slot->tts_values;
    bool* isnull = slot->tts_isnull;
    SourceRow row;
    for (;;) {
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

// A unique violation of the conflict index itself (or, on a partitioned target, of a
// partition's index attached to it).
bool MergeRun::is_arbiter_violation(const PgError& e) const {
    const ErrorData* ed = e.data();
    if (e.sqlerrcode() != ERRCODE_UNIQUE_VIOLATION || !ed->constraint_name || !ed->schema_name)
        return false;
    const Oid arbiter = m_res.target.index;
    return pg_call([&] {
        Oid nsp = get_namespace_oid(ed->schema_name, true);
        Oid idx = OidIsValid(nsp) ? get_relname_relid(ed->constraint_name, nsp) : InvalidOid;
        if (!OidIsValid(idx))
            return false;
        return idx == arbiter || list_member_oid(get_partition_ancestors(idx), arbiter);
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

}  // namespace

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
