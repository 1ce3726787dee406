// The parallel workers of parallel_parse.hpp: each converts the batches of field strings its
// queue brings and sends back the rows as minimal tuples.
#include "parallel_parse.hpp"
#include "parallel_parse_shared.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

#include <cstring>
#include <memory>

namespace pg_ingest::parallel_parse {

using namespace detail;

namespace {

void worker_main(dsm_segment* seg, shm_toc* toc) {
    const Shared* sh = nullptr;
    shm_mq_handle* in = nullptr;
    shm_mq_handle* out = nullptr;
    Relation rel = nullptr;
    MemoryContext cxt = nullptr;
    pg_call([&] {
        sh = static_cast<const Shared*>(shm_toc_lookup(toc, key_shared, false));
        shm_mq* qi =
            static_cast<shm_mq*>(shm_toc_lookup(toc, key_in + ParallelWorkerNumber, false));
        shm_mq_set_receiver(qi, MyProc);
        in = shm_mq_attach(qi, seg, NULL);
        shm_mq* qo =
            static_cast<shm_mq*>(shm_toc_lookup(toc, key_out + ParallelWorkerNumber, false));
        shm_mq_set_sender(qo, MyProc);
        out = shm_mq_attach(qo, seg, NULL);
        rel = table_open(sh->relid, AccessShareLock);
        // What pg_stat_activity shows for this worker (its leader_pid names the session).
        pgstat_report_activity(
            STATE_RUNNING,
            psprintf("pg_ingest: converting the input of COPY %s ... ON_CONFLICT",
                     quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
                                                RelationGetRelationName(rel))));
        cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_ingest parse worker row",
                                    ALLOCSET_DEFAULT_SIZES);
    });
    const std::vector<AttrNumber> cols(sh->cols, sh->cols + sh->ncols);
    Converter conv(rel, cols);
    std::vector<Datum> values(cols.size() + 1);
    std::unique_ptr<bool[]> nulls(new bool[cols.size() + 1]);
    nulls[cols.size()] = false;
    std::vector<char> reply;
    for (;;) {
        Size len = 0;
        void* data = nullptr;
        shm_mq_result r;
        pg_call([&] { r = shm_mq_receive(in, &len, &data, false); });
        if (r != SHM_MQ_SUCCESS)
            break;  // detached: the leader has no more input for us (or is gone)
        uint32_t rows;
        memcpy(&rows, data, sizeof rows);
        const char* p = static_cast<const char*>(data) + 8;
        reply.assign(8, 0);
        memcpy(reply.data(), &rows, sizeof rows);
        for (uint32_t i = 0; i < rows; i++) {
            int64_t line = 0;
            MinimalTuple mt = nullptr;
            pg_call([&] {
                MemoryContextReset(cxt);
                MemoryContext old = MemoryContextSwitchTo(cxt);
                p = conv.convert(p, values.data(), nulls.get(), &line);
                values[conv.ncols()] = Int64GetDatum(line);
                mt = heap_form_minimal_tuple(conv.desc(), values.data(), nulls.get());
                MemoryContextSwitchTo(old);
                CHECK_FOR_INTERRUPTS();
            });
            const uint32_t tlen = mt->t_len;
            const uint32_t unused = 0;
            append(reply, &line, sizeof line);
            append(reply, &tlen, sizeof tlen);
            append(reply, &unused, sizeof unused);
            append(reply, mt, tlen);
            pad_to_maxalign(reply);
        }
        pg_call([&] { r = shm_mq_send(out, reply.size(), reply.data(), false, true); });
        if (r != SHM_MQ_SUCCESS)
            break;
    }
    pg_call([&] {
        MemoryContextDelete(cxt);
        table_close(rel, AccessShareLock);
    });
}

}  // namespace

}  // namespace pg_ingest::parallel_parse

extern "C" void pg_ingest_parse_worker_main(dsm_segment* seg, shm_toc* toc) {
    pg_ingest::guard([&] { pg_ingest::parallel_parse::worker_main(seg, toc); });
}
