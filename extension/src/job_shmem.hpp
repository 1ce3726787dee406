// Shared state of the async load launcher and workers: which databases want a worker, the
// worker slots (which job each worker runs, its live progress, cancel requests), and the
// launcher's latch. Backends wake the launcher when a transaction that submitted or retried a
// job commits.
#pragma once

#include "boundary.hpp"

extern "C" {
#include "postmaster/bgworker.h"
}

#include <cstdint>
#include <optional>
#include <vector>

namespace pg_ingest::jobs {

// Wiring, from _PG_init.
void install_shmem_hooks();
void install_xact_callback();

// Launcher side.
void launcher_attach();                    // records the launcher's latch
std::vector<Oid> take_wanted_databases();  // databases to start a worker for (clears wants)
void want_database(Oid dboid, bool only_if_known_extension);
// A database without pg_ingest (and no job submitted since) is forgotten until one is.
void set_has_extension(Oid dboid, bool has);
// Forgets the databases not in `existing` (dropped ones), unless a worker is wanted there.
void forget_databases_except(const std::vector<Oid>& existing);
// Whether an entry could not be made (the table was full) since the last call.
bool take_database_table_full();
std::vector<Oid> databases_with_extension();
// A reserved slot. Its generation tells this reservation from later ones of the same slot: a
// worker that exits frees its slot at once, and the launcher may hand it to the next worker
// before it sees the first one's handle stopped.
struct SlotTicket {
    int slot;
    uint64_t generation;
};
// Reserves a free slot for a worker in dboid; none when max_workers are running.
std::optional<SlotTicket> reserve_slot(Oid dboid);
void release_slot(const SlotTicket& ticket);  // a worker that could not be started
// Frees the slot if this reservation's worker stopped without attaching (its registration
// failed or it died at start); a later reservation of the slot is left alone.
void release_slot_if_unattached(const SlotTicket& ticket);
// Frees the slots that a previous run of the launcher reserved and whose worker has not
// attached (it died between the two, or while its worker started): only that run could free
// them, from its worker handles. A worker that attaches later is refused (worker_attach); the
// slots' databases are wanted again. Returns how many were freed.
int release_unattached_slots();
int running_workers();
// Starts the worker of a reserved slot (job_launcher.cpp), notifying the calling process of its
// exit; nullptr when PostgreSQL has no free background worker slot.
BackgroundWorkerHandle* start_worker(const SlotTicket& ticket);

// Worker side.
Oid slot_database(int slot);
// Records MyProcPid in the slot and detaches on exit; false (nothing recorded) when the
// reservation is no longer the slot's, and the worker must exit.
bool worker_attach(const SlotTicket& ticket);
void set_slot_job(int slot, int64_t job_id);
// The worker is being ended for running past twice ingest.job_timeout (async-signal-safe).
void mark_slot_timed_out(int slot);
// Jobs of dboid whose worker was so ended (each returned once).
std::vector<int64_t> take_timed_out_jobs(Oid dboid);
void set_slot_progress(int slot, int64_t rows_applied);
bool cancel_requested(int slot, int64_t job_id);
// Records `signature` (of the database's jobs restored from a dump; 0: none) and says whether
// it differs from the one recorded before: workers visit every naptime, and report the restored
// jobs they find only when these change (or after a restart).
bool note_restored_jobs(Oid dboid, uint64_t signature);
// Job ids are per database: the lookups below by job id match only the current database's.
// Job ids that live workers are running (for orphan recovery).
std::vector<int64_t> running_job_ids();

// Marks the database as wanting a worker and wakes the launcher.
void request_worker(Oid dboid);

// Backend side.
// A session waiting for job_id registers its latch; the worker that ends the job sets it.
// Registration is best effort (a full table means polling only); unregister_waiter() is
// idempotent, and runs at backend exit too (a FATAL during the wait skips the caller's
// cleanup); a stale entry left by a process that crashed only causes a spurious wake-up.
void register_waiter(int64_t job_id);
void unregister_waiter();
void wake_waiters(int64_t job_id);
void wake_launcher_at_commit();  // from submit/retry
std::optional<int64_t> rows_applied(int64_t job_id);
// The PID of the live worker running job_id in this database; 0 when none.
int job_worker_pid(int64_t job_id);
// Asks the worker running job_id to cancel it; false when no worker runs it.
bool request_cancel(int64_t job_id);

}  // namespace pg_ingest::jobs
