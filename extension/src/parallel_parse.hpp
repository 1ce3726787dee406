// Parallel field conversion for COPY ... ON_CONFLICT (text and csv input).
//
// Most of a wide COPY's time goes to the columns' input functions (numeric_in, timestamptz_in,
// jsonb_in ...), not to reading lines. The leader still reads every line and splits it into
// fields with COPY's own parser (NextCopyFromRawFields: encodings, quoting, HEADER, escapes all
// as plain COPY); batches of field strings then go to parallel workers through shared memory
// queues, and the workers send back the converted rows as minimal tuples. The leader converts a
// batch itself whenever the workers are busy, so it never waits while there is input to read.
//
// Row order does not matter to the merge (rows are sorted on key and line number), so rows come
// back in whatever order the work finishes. Errors do: a bad row fails the COPY with the
// message and context the serial path gives ("COPY t, line N, column c: ..."), plus the
// "parallel worker" context line PostgreSQL adds when a worker raised it. With one worker (the
// default) the first bad line is the one named. With several, each worker raises the first
// error of its own batches and the first to arrive wins, so a later bad line may be named.
//
// Only used where it cannot change the result: ON_ERROR 'stop', text or csv, and every loaded
// column of a base or enum type (or an array of one) whose input function is parallel safe.
// Domains, composite and range types, binary input, ON_ERROR 'ignore' and COPY ... WHERE use
// the serial path in copy_hook.cpp.
#pragma once

#include "boundary.hpp"

extern "C" {
#include "commands/copyfrom_internal.h"
#include "nodes/pg_list.h"
#include "storage/dsm.h"
#include "storage/shm_toc.h"
#include "utils/rel.h"
}

#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <vector>

namespace pg_ingest::parallel_parse {

// Whether a COPY into `rel` of the columns `cols` (attnums, in the input's order), whose rows
// the merge sorts with `sort_operators`, may convert in parallel.
bool eligible(Relation rel, const std::vector<AttrNumber>& cols,
              const std::vector<Oid>& sort_operators, bool has_where, bool binary,
              bool ignore_errors);

namespace detail {
class Converter;  // parallel_parse_shared.hpp
}
struct Workers;

// Reads the rest of one COPY's rows, from where `cstate` is, with ingest.copy_parse_workers
// workers (the caller reads the first ingest.copy_parse_min_rows rows itself, so that small
// COPYs never pay for a worker, and goes on itself if start() finds none: max_parallel_workers,
// max_worker_processes). Construct it in a memory context that lives as long as the COPY.
// Not copyable. Errors are PgError / ServerError. If the COPY fails, the transaction's abort
// stops the workers; the destructor does nothing that can fail.
class Reader {
  public:
    Reader(CopyFromState cstate, Relation rel, const std::vector<AttrNumber>& cols);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    // Enters parallel mode and starts the workers; false (and out of parallel mode again)
    // when none could be started.
    bool start();

    // The next row: values/nulls are indexed by attnum - 1 over the whole relation (columns
    // not loaded are NULL); by-reference values live until the next call. A row a worker
    // converted is given as *formed instead: a minimal tuple of the loaded columns followed
    // by the line number as int8 (SourceRow::formed), living until the next call; *formed is
    // left alone otherwise. False at the end of input, when the
    // workers have stopped.
    bool next(Datum* values, bool* nulls, int64_t* line, MinimalTuple* formed);

    int workers_launched() const { return m_launched; }
    int64_t rows_by_workers() const { return m_rows_by_workers; }
    int64_t rows_by_leader() const { return m_rows_by_leader; }

  private:
    struct Batch {
        std::vector<char> bytes;  // uint32 rows, then per row: int64 line, per column a field
        uint32_t rows = 0;
    };
    bool read_batch(Batch& b);
    int worker_with_room() const;
    void send(int w, const Batch& b);
    bool receive(bool wait);
    void drain_in_flight();
    void finish();
    [[noreturn]] void worker_lost();

    CopyFromState m_cstate;
    Relation m_rel;
    std::vector<AttrNumber> m_cols;
    std::unique_ptr<detail::Converter> m_conv;
    std::unique_ptr<Workers> m_workers;
    int m_launched = 0;
    bool m_eof = false;
    bool m_done = false;
    std::exception_ptr m_read_error;  // the input could not be read on (read_batch())
    int64_t m_rows_by_workers = 0;
    int64_t m_rows_by_leader = 0;

    Batch m_read;   // being filled from the input
    Batch m_local;  // being converted here
    size_t m_local_pos = 0;
    uint32_t m_local_left = 0;
    MemoryContext m_cxt = nullptr;        // the queues' handles, the slot
    MemoryContext m_local_cxt = nullptr;  // the leader's conversions of one row
    std::vector<Datum> m_vals;            // one row converted here, loaded columns only
    std::unique_ptr<bool[]> m_nulls;

    // Converted batches from the workers, oldest first, and the one being handed out.
    std::deque<std::vector<uint64_t>> m_results;
    std::vector<uint64_t> m_current;
    size_t m_current_pos = 0;
    uint32_t m_current_left = 0;
};

}  // namespace pg_ingest::parallel_parse

// The parallel workers' entry point (access/parallel.h looks it up by name).
extern "C" __attribute__((visibility("default"))) void pg_ingest_parse_worker_main(dsm_segment* seg,
                                                                                   shm_toc* toc);
