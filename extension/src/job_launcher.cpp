// The async load launcher: starts workers where jobs wait. Latch-driven: backends set its latch
// when a submit or retry commits and workers when they exit; otherwise it sleeps for
// ingest.launcher_naptime.
#include "guc.hpp"
#include "job_shmem.hpp"
#include "job_worker.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

namespace pg_ingest::jobs {

namespace {

// Databases that accept connections (templates excluded, unless `all`: then every database),
// read from the shared catalog.
std::vector<Oid> list_databases(bool all = false) {
    Oid* found = nullptr;
    int n = 0;
    pg_call([&] {
        StartTransactionCommand();
        (void)GetTransactionSnapshot();
        Relation rel = table_open(DatabaseRelationId, AccessShareLock);
        TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
        HeapTuple tup;
        int room = 64;
        // Plain palloc'd C data inside pg_call (it may longjmp); the launcher's long-lived
        // context holds it until it is copied out below.
        found = static_cast<Oid*>(MemoryContextAlloc(TopMemoryContext, room * sizeof(Oid)));
        while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL) {
            Form_pg_database db = (Form_pg_database)GETSTRUCT(tup);
            if (!all && (!db->datallowconn || db->datistemplate))
                continue;
            if (n == room) {
                room *= 2;
                found = static_cast<Oid*>(repalloc(found, room * sizeof(Oid)));
            }
            found[n++] = db->oid;
        }
        table_endscan(scan);
        table_close(rel, AccessShareLock);
        CommitTransactionCommand();
    });
    std::vector<Oid> out(found, found + n);
    pg_call([&] { pfree(found); });
    return out;
}

void run_launcher() {
    pg_call([] {
        pqsignal(SIGHUP, SignalHandlerForConfigReload);
        pqsignal(SIGTERM, die);
        BackgroundWorkerUnblockSignals();
        BackgroundWorkerInitializeConnection(NULL, NULL, 0);
    });
    launcher_attach();
    // A previous run that died (terminated, or an error) took the handles of the workers it
    // had started but not seen attach: their slots would stay in use until a server restart.
    if (const int freed = release_unattached_slots(); freed > 0)
        pg_call([&] {
            ereport(LOG, (errcode(ERRCODE_WARNING),
                          errmsg_plural("pg_ingest launcher freed %d worker slot that its "
                                        "previous run reserved for a worker that did not attach",
                                        "pg_ingest launcher freed %d worker slots that its "
                                        "previous run reserved for workers that did not attach",
                                        static_cast<unsigned long>(freed), freed)));
        });
    // After a start or a crash every database gets one worker: it recovers jobs left in
    // LOADING, or finds no pg_ingest and is not asked again until a job is submitted there.
    for (Oid db : list_databases())
        want_database(db, false);

    std::vector<std::pair<SlotTicket, BackgroundWorkerHandle*>> started;
    TimestampTz last_pass = GetCurrentTimestamp();
    for (;;) {
        // Slots of workers that stopped without ever attaching.
        for (size_t i = 0; i < started.size();) {
            pid_t pid;
            const BgwHandleStatus st =
                pg_call([&] { return GetBackgroundWorkerPid(started[i].second, &pid); });
            if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED) {
                release_slot_if_unattached(started[i].first);
                started.erase(started.begin() + static_cast<long>(i));
            } else {
                i++;
            }
        }
        for (Oid db : take_wanted_databases()) {
            const std::optional<SlotTicket> ticket = reserve_slot(db);
            if (!ticket)
                break;  // max_workers running; an exiting worker wakes us
            BackgroundWorkerHandle* h = start_worker(*ticket);
            if (!h) {
                // No free background worker slot (max_worker_processes); retry later.
                release_slot(*ticket);
                pg_call([] {
                    ereport(WARNING,
                            (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                             errmsg("pg_ingest could not start an async load worker"),
                             errhint("Raise max_worker_processes or lower ingest.max_workers.")));
                });
                break;
            }
            started.emplace_back(*ticket, h);
        }

        const long naptime_ms = guc::launcher_naptime * 1000L;
        const long since = static_cast<long>((GetCurrentTimestamp() - last_pass) / 1000);
        pg_call([&] {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                            std::max(1L, std::min(naptime_ms - since, 1000L)), PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        });
        if (GetCurrentTimestamp() - last_pass >= naptime_ms * 1000L) {
            forget_databases_except(list_databases(true));  // dropped ones
            if (take_database_table_full())
                pg_call([] {
                    ereport(WARNING,
                            (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                             errmsg("pg_ingest knows of too many databases to track them all"),
                             errdetail("Jobs submitted in the databases left out wait until a "
                                       "worker there is started by a later submit or restart."),
                             errhint("Drop databases that are no longer used.")));
                });
            // Only databases that accept connections now (ALTER DATABASE ... ALLOW_CONNECTIONS
            // false since): a worker started for another would fail at once, every pass.
            const std::vector<Oid> connectable = list_databases();
            for (Oid db : databases_with_extension())
                if (std::find(connectable.begin(), connectable.end(), db) != connectable.end())
                    want_database(db, true);
            last_pass = GetCurrentTimestamp();
        }
    }
}

}  // namespace

BackgroundWorkerHandle* start_worker(const SlotTicket& ticket) {
    const int slot = ticket.slot;
    BackgroundWorker w;
    memset(&w, 0, sizeof(w));
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_ingest");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "pg_ingest_worker_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "pg_ingest worker %d", slot);
    snprintf(w.bgw_type, BGW_MAXLEN, "pg_ingest worker");
    w.bgw_main_arg = Int32GetDatum(slot);
    static_assert(sizeof(ticket.generation) <= BGW_EXTRALEN);
    memcpy(w.bgw_extra, &ticket.generation, sizeof(ticket.generation));
    w.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle* handle = nullptr;
    const bool ok = pg_call([&] { return RegisterDynamicBackgroundWorker(&w, &handle); });
    return ok ? handle : nullptr;
}

void register_launcher() {
    BackgroundWorker w;
    memset(&w, 0, sizeof(w));
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = 5;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_ingest");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "pg_ingest_launcher_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "pg_ingest launcher");
    snprintf(w.bgw_type, BGW_MAXLEN, "pg_ingest launcher");
    pg_call([&] { RegisterBackgroundWorker(&w); });
}

}  // namespace pg_ingest::jobs

extern "C" void pg_ingest_launcher_main(Datum) {
    pg_ingest::guard([] { pg_ingest::jobs::run_launcher(); });
}
