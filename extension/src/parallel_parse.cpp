// Parallel field conversion for COPY ... ON_CONFLICT: see parallel_parse.hpp.
//
// The session side: eligibility and the Reader. The message formats are in
// parallel_parse_shared.hpp, the workers in parallel_parse_worker.cpp.
#include "parallel_parse.hpp"
#include "parallel_parse_shared.hpp"

#include "guc.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tupdesc.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "executor/tuptable.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <cstring>

namespace pg_ingest::parallel_parse {

using namespace detail;

namespace {

// Fails the COPY with the worker's own error if it sent one (it is raised by the interrupt
// processing here), else with ours.
[[noreturn]] void raise_worker_gone() {
    raise(ERRCODE_INTERNAL_ERROR,
          "a parallel worker converting the input of COPY ... ON_CONFLICT stopped before it "
          "finished",
          "Nothing was loaded.",
          "Retry the COPY; SET ingest.copy_parse_workers = 0 converts the input without "
          "workers.");
}

bool type_ok(Oid type, int depth) {
    const char typtype = get_typtype(type);
    if (typtype != TYPTYPE_BASE && typtype != TYPTYPE_ENUM)
        return false;
    Oid input, ioparam;
    getTypeInputInfo(type, &input, &ioparam);
    if (func_parallel(input) != PROPARALLEL_SAFE)
        return false;
    const Oid elem = get_element_type(type);  // array_in calls the element's input function
    return !OidIsValid(elem) || (depth < 2 && type_ok(elem, depth + 1));
}

}  // namespace

struct Workers {
    ParallelContext* pcxt = nullptr;
    std::vector<shm_mq_handle*> in, out;
    std::vector<int> in_flight;
    int total_in_flight = 0;
    int next = 0;  // where receive() looks first, round robin
};

bool eligible(Relation rel, const std::vector<AttrNumber>& cols,
              const std::vector<Oid>& sort_operators, bool has_where, bool binary,
              bool ignore_errors) {
    // A WHERE error names the row's line with its text, which only the serial path still has
    // when the condition runs.
    if (binary || ignore_errors || has_where || guc::copy_parse_workers <= 0 || cols.empty())
        return false;
    return pg_call([&] {
        if (IsInParallelMode() || !IsUnderPostmaster)
            return false;
        TupleDesc rd = RelationGetDescr(rel);
        for (AttrNumber a : cols)
            if (!type_ok(TupleDescAttr(rd, a - 1)->atttypid, 0))
                return false;
        // The session sorts the rows while in parallel mode.
        for (Oid op : sort_operators)
            if (func_parallel(get_opcode(op)) == PROPARALLEL_UNSAFE)
                return false;
        return true;
    });
}

Reader::Reader(CopyFromState cstate, Relation rel, const std::vector<AttrNumber>& cols)
    : m_cstate(cstate), m_rel(rel), m_cols(cols) {
    m_conv = std::make_unique<Converter>(rel, cols);
    // The caller reads rows in a per-row memory context: what lives longer is allocated in
    // the context current now.
    m_cxt = CurrentMemoryContext;
    m_local_cxt = pg_call([] {
        return AllocSetContextCreate(CurrentMemoryContext, "pg_ingest parse row",
                                     ALLOCSET_DEFAULT_SIZES);
    });
    m_vals.resize(cols.size());
    m_nulls.reset(new bool[cols.size()]);
}

// The workers are stopped by the transaction's abort (or have been by finish()).
Reader::~Reader() = default;

bool Reader::read_batch(Batch& b) {
    b.bytes.assign(8, 0);
    b.rows = 0;
    const int attr_count = static_cast<int>(m_cols.size());
    const CopyFormatOptions& o = m_cstate->opts;
    while (b.rows < batch_rows && b.bytes.size() < batch_bytes) {
        char** fields = nullptr;
        int nfields = 0;
        bool ok = false;
        try {
            ok = pg_call([&] {
                ErrorContextCallback cb;
                cb.callback = CopyFromErrorCallback;
                cb.arg = m_cstate;
                cb.previous = error_context_stack;
                error_context_stack = &cb;
                const bool got = NextCopyFromRawFields(m_cstate, &fields, &nfields);
                error_context_stack = cb.previous;
                return got;
            });
        } catch (const PgError&) {
            // The input cannot be read on (an invalid byte sequence, an unterminated quoted
            // field ...). Rows before it may hold a bad value, which plain COPY would have
            // reported first: they are converted, then this error is raised (next()). The
            // COPY fails either way; nothing here touches the input again.
            m_read_error = std::current_exception();
            m_eof = true;
            break;
        }
        if (!ok) {
            m_eof = true;
            break;
        }
        const int64_t line = static_cast<int64_t>(m_cstate->cur_lineno);
        const int32_t nf = nfields;
        append(b.bytes, &line, sizeof line);
        append(b.bytes, &nf, sizeof nf);
        if (nf != attr_count) {
            const int32_t len = m_cstate->line_buf.len;
            append(b.bytes, &len, sizeof len);
            append(b.bytes, m_cstate->line_buf.data, static_cast<size_t>(len) + 1);
        }
        for (int i = 0; i < attr_count && i < nf; i++) {
            const int m = m_cols[i] - 1;
            const char* s = fields[i];
            if (o.csv_mode) {
                if (s == nullptr && o.force_notnull_flags[m])
                    s = o.null_print;
                else if (s != nullptr && o.force_null_flags[m] && strcmp(s, o.null_print) == 0)
                    s = nullptr;
            }
            const int32_t len = s == nullptr ? -1 : static_cast<int32_t>(strlen(s));
            append(b.bytes, &len, sizeof len);
            if (s != nullptr)
                append(b.bytes, s, static_cast<size_t>(len) + 1);
        }
        b.rows++;
    }
    memcpy(b.bytes.data(), &b.rows, sizeof b.rows);
    return b.rows > 0;
}

bool Reader::start() {
    const int n = guc::copy_parse_workers;
    if (n <= 0)
        return false;
    m_workers = std::make_unique<Workers>();
    Workers& ws = *m_workers;
    std::vector<shm_mq*> in_q(n), out_q(n);
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        EnterParallelMode();
        ParallelContext* pcxt =
            CreateParallelContext("pg_ingest", "pg_ingest_parse_worker_main", n);
        ws.pcxt = pcxt;
        shm_toc_estimate_chunk(&pcxt->estimator, sizeof(Shared));
        for (int i = 0; i < n; i++) {
            shm_toc_estimate_chunk(&pcxt->estimator, in_queue_size);
            shm_toc_estimate_chunk(&pcxt->estimator, out_queue_size);
        }
        shm_toc_estimate_keys(&pcxt->estimator, 1 + 2 * n);
        InitializeParallelDSM(pcxt);
        if (pcxt->seg == nullptr) {  // no shared memory segment to be had: no workers
            MemoryContextSwitchTo(old);
            return;
        }
        Shared* sh = static_cast<Shared*>(shm_toc_allocate(pcxt->toc, sizeof(Shared)));
        sh->relid = RelationGetRelid(m_rel);
        sh->ncols = static_cast<int>(m_cols.size());
        std::copy(m_cols.begin(), m_cols.end(), sh->cols);
        shm_toc_insert(pcxt->toc, key_shared, sh);
        for (int i = 0; i < n; i++) {
            in_q[i] = shm_mq_create(shm_toc_allocate(pcxt->toc, in_queue_size), in_queue_size);
            shm_mq_set_sender(in_q[i], MyProc);
            shm_toc_insert(pcxt->toc, key_in + i, in_q[i]);
            out_q[i] = shm_mq_create(shm_toc_allocate(pcxt->toc, out_queue_size), out_queue_size);
            shm_mq_set_receiver(out_q[i], MyProc);
            shm_toc_insert(pcxt->toc, key_out + i, out_q[i]);
        }
        LaunchParallelWorkers(pcxt);
        MemoryContextSwitchTo(old);
    });
    ParallelContext* pcxt = ws.pcxt;
    const int launched = pcxt->seg == nullptr ? 0 : pcxt->nworkers_launched;
    if (launched == 0) {
        pg_call([&] {
            DestroyParallelContext(pcxt);
            ExitParallelMode();
            ereport(DEBUG1,
                    (errmsg_internal("pg_ingest COPY into %s: no parse worker could be started",
                                     RelationGetRelationName(m_rel))));
        });
        m_workers.reset();
        return false;
    }
    ws.in.resize(launched);
    ws.out.resize(launched);
    ws.in_flight.assign(launched, 0);
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(m_cxt);
        for (int i = 0; i < launched; i++) {
            ws.in[i] = shm_mq_attach(in_q[i], pcxt->seg, pcxt->worker[i].bgwhandle);
            ws.out[i] = shm_mq_attach(out_q[i], pcxt->seg, pcxt->worker[i].bgwhandle);
        }
        MemoryContextSwitchTo(old);
    });
    m_launched = launched;
    return true;
}

int Reader::worker_with_room() const {
    for (int w = 0; w < m_launched; w++)
        if (m_workers->in_flight[w] < in_flight_per_worker)
            return w;
    return -1;
}

void Reader::send(int w, const Batch& b) {
    Workers& ws = *m_workers;
    shm_mq_result r;
    for (;;) {
        pg_call([&] { r = shm_mq_send(ws.in[w], b.bytes.size(), b.bytes.data(), true, true); });
        if (r != SHM_MQ_WOULD_BLOCK)
            break;
        // Not expected (the queue holds every batch in flight), but never wait for a worker
        // without taking its results: it may be waiting for us to.
        if (!receive(false))
            pg_call([] {
                (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
                                PG_WAIT_EXTENSION);
                ResetLatch(MyLatch);
                CHECK_FOR_INTERRUPTS();
            });
    }
    if (r != SHM_MQ_SUCCESS)
        worker_lost();
    ws.in_flight[w]++;
    ws.total_in_flight++;
}

bool Reader::receive(bool wait) {
    Workers& ws = *m_workers;
    for (;;) {
        for (int k = 0; k < m_launched; k++) {
            const int w = (ws.next + k) % m_launched;
            if (ws.in_flight[w] == 0)
                continue;
            Size len = 0;
            void* data = nullptr;
            shm_mq_result r;
            pg_call([&] { r = shm_mq_receive(ws.out[w], &len, &data, true); });
            if (r == SHM_MQ_WOULD_BLOCK)
                continue;
            if (r != SHM_MQ_SUCCESS)
                worker_lost();
            // Copied into 8-byte aligned memory: the minimal tuples are read in place.
            std::vector<uint64_t> copy((len + 7) / 8);
            memcpy(copy.data(), data, len);
            m_results.push_back(std::move(copy));
            ws.in_flight[w]--;
            ws.total_in_flight--;
            ws.next = (w + 1) % m_launched;
            return true;
        }
        if (!wait)
            return false;
        pg_call([] {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();  // a worker's error is raised here
        });
    }
}

void Reader::drain_in_flight() {
    while (m_workers && m_launched > 0 && m_workers->total_in_flight > 0)
        receive(true);
}

// A queue's other end went away before the end of the input: a worker died. Its error, if it
// sent one, is what the COPY fails with (WaitForParallelWorkersToFinish raises it).
void Reader::worker_lost() {
    Workers& ws = *m_workers;
    pg_call([&] {
        for (size_t i = 0; i < ws.in.size(); i++) {
            shm_mq_detach(ws.in[i]);
            shm_mq_detach(ws.out[i]);
        }
        ws.in.clear();
        ws.out.clear();
        WaitForParallelWorkersToFinish(ws.pcxt);
    });
    raise_worker_gone();
}

void Reader::finish() {
    m_done = true;
    const int launched = m_launched;
    if (m_launched > 0) {
        Workers& ws = *m_workers;
        pg_call([&] {
            for (shm_mq_handle* h : ws.in)
                shm_mq_detach(h);  // the workers' end of input
            ws.in.clear();
            WaitForParallelWorkersToFinish(ws.pcxt);
            for (shm_mq_handle* h : ws.out)
                shm_mq_detach(h);
            ws.out.clear();
            DestroyParallelContext(ws.pcxt);
            ExitParallelMode();
        });
        m_workers.reset();
        m_launched = 0;
    }
    pg_call([&] {
        ereport(DEBUG1,
                (errmsg_internal("pg_ingest COPY into %s: %d parse workers, %lld rows "
                                 "converted by workers and %lld by the leader",
                                 RelationGetRelationName(m_rel), launched,
                                 (long long)m_rows_by_workers, (long long)m_rows_by_leader)));
    });
}

bool Reader::next(Datum* values, bool* nulls, int64_t* line, MinimalTuple* formed) {
    const int natts = RelationGetDescr(m_rel)->natts;
    const int ncols = static_cast<int>(m_cols.size());
    for (;;) {
        if (m_current_left > 0) {
            const char* p = reinterpret_cast<const char*>(m_current.data()) + m_current_pos;
            int64_t l;
            uint32_t len;
            memcpy(&l, p, sizeof l);
            memcpy(&len, p + 8, sizeof len);
            MinimalTuple mt = reinterpret_cast<MinimalTuple>(const_cast<char*>(p + 16));
            m_current_pos += 16 + MAXALIGN(len);
            m_current_left--;
            m_rows_by_workers++;
            *line = l;
            *formed = mt;
            return true;
        }
        if (!m_results.empty()) {
            m_current = std::move(m_results.front());
            m_results.pop_front();
            memcpy(&m_current_left, m_current.data(), sizeof m_current_left);
            m_current_pos = 8;
            continue;
        }
        if (m_local_left > 0) {
            int64_t l = 0;
            try {
                pg_call([&] {
                    MemoryContextReset(m_local_cxt);
                    MemoryContext old = MemoryContextSwitchTo(m_local_cxt);
                    // No interrupt processing inside the input functions: a worker's error
                    // raised there would pass for this row's.
                    HOLD_INTERRUPTS();
                    const char* p = m_local.bytes.data() + m_local_pos;
                    const char* end = m_conv->convert(p, m_vals.data(), m_nulls.get(), &l);
                    m_local_pos += static_cast<size_t>(end - p);
                    RESUME_INTERRUPTS();
                    MemoryContextSwitchTo(old);
                });
            } catch (const PgError& e) {
                // A bad row. Rows sent to the workers before it come first in the input: if
                // one of them is bad too, its error is the one raised (in the drain). Not for
                // other errors (a cancel, out of memory): they are raised at once.
                const int category = ERRCODE_TO_CATEGORY(e.sqlerrcode());
                if (category == ERRCODE_TO_CATEGORY(ERRCODE_DATA_EXCEPTION) ||
                    category == ERRCODE_TO_CATEGORY(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION))
                    drain_in_flight();
                throw;
            }
            std::fill_n(nulls, natts, true);
            for (int i = 0; i < ncols; i++) {
                values[m_cols[i] - 1] = m_vals[i];
                nulls[m_cols[i] - 1] = m_nulls[i];
            }
            m_local_left--;
            m_rows_by_leader++;
            *line = l;
            return true;
        }
        if (m_launched > 0 && m_workers->total_in_flight > 0 && receive(false))
            continue;
        if (!m_eof) {
            if (!read_batch(m_read))
                continue;  // the end of the input
            const int w = m_read.bytes.size() <= max_sent_batch ? worker_with_room() : -1;
            if (w >= 0) {
                send(w, m_read);
                continue;
            }
            std::swap(m_local, m_read);
            m_local_pos = 8;
            m_local_left = m_local.rows;
            continue;
        }
        if (m_launched > 0 && m_workers->total_in_flight > 0) {
            receive(true);
            continue;
        }
        if (m_read_error) {
            std::exception_ptr e = m_read_error;
            m_read_error = nullptr;
            std::rethrow_exception(e);
        }
        if (!m_done)
            finish();
        return false;
    }
}

}  // namespace pg_ingest::parallel_parse
