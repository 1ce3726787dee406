// Internal to the merge engine (merge.cpp, merge_chunk.cpp, merge_replay.cpp): one running
// merge. See merge.hpp for the design.
#pragma once

#include "merge.hpp"

#include "conflict_target.hpp"
#include "guc.hpp"
#include "merge_direct.hpp"
#include "merge_sql.hpp"
#include "merge_superseded.hpp"

extern "C" {
#include "executor/spi.h"
#include "portability/instr_time.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"
}

#include <memory>
#include <string>
#include <vector>

namespace pg_ingest::merge_detail {

class MergeRun;
// Merges running in this backend, innermost last (ingest._merge_rows() finds its merge here).
extern std::vector<MergeRun*> g_active;
// Upsert counts the rows that took the DO UPDATE path through ingest._merge_note_conflict().
extern int64_t g_conflicts;

inline instr_time now() {
    instr_time t;
    INSTR_TIME_SET_CURRENT(t);
    return t;
}

inline double elapsed_ms(instr_time a, instr_time b) {
    INSTR_TIME_SUBTRACT(b, a);
    return INSTR_TIME_GET_MILLISEC(b);
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

}  // namespace pg_ingest::merge_detail
