#include "job_shmem.hpp"

#include "guc.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
}

#include <algorithm>
#include <csignal>

namespace pg_ingest::jobs {

namespace {

// Databases known to the launcher: those with pg_ingest, and those waiting for a first look.
// Entries are freed when a worker finds no pg_ingest and when a database is dropped.
constexpr int max_databases = 512;

struct DbEntry {
    Oid dboid;
    bool wanted;                  // start a worker there
    bool has_extension;           // a worker found pg_ingest installed
    uint64_t restored_signature;  // of the restored jobs a worker last reported (0: none)
};

struct Slot {
    bool in_use;
    uint64_t generation;  // of the reservation that holds (or last held) it
    int pid;              // 0 until the worker attaches
    Oid dboid;
    int64_t job_id;
    pg_atomic_uint64 rows_applied;
    bool cancel_requested;
    // Set (from a timeout handler) when the worker is ended for running past twice
    // ingest.job_timeout: its exit records the job in timed_out_jobs.
    volatile sig_atomic_t timed_out;
};

// Jobs whose worker was ended at twice ingest.job_timeout: the next worker in their database
// records them FAIL instead of queuing them again as orphans.
constexpr int max_timed_out = 64;

struct TimedOutJob {
    Oid dboid;
    int64_t job_id;  // 0: free
};

constexpr int max_waiters = 128;

struct Waiter {
    int64_t job_id;  // 0: free
    int pid;
    Latch* latch;
};

struct Shared {
    LWLock* lock;
    Latch* launcher_latch;
    uint64_t last_generation;
    Waiter waiters[max_waiters];
    DbEntry dbs[max_databases];
    bool db_table_full;  // an entry could not be made since the launcher last looked
    TimedOutJob timed_out_jobs[max_timed_out];
    Slot slots[guc::max_worker_slots];
};

Shared* g_shared = nullptr;
shmem_request_hook_type prev_request_hook = nullptr;
shmem_startup_hook_type prev_startup_hook = nullptr;
bool g_wake_at_commit = false;

// Plain C helpers: called with the LWLock held, they must not throw or allocate.
DbEntry* find_db(Oid dboid, bool create) {
    DbEntry* free_entry = nullptr;
    for (DbEntry& e : g_shared->dbs) {
        if (e.dboid == dboid)
            return &e;
        if (!OidIsValid(e.dboid) && !free_entry)
            free_entry = &e;
    }
    if (create && free_entry) {
        free_entry->dboid = dboid;
        free_entry->wanted = false;
        free_entry->has_extension = false;
        free_entry->restored_signature = 0;
        return free_entry;
    }
    if (create)
        g_shared->db_table_full = true;  // reported by the launcher
    return nullptr;
}

void wake_launcher_locked() {
    if (g_shared->launcher_latch)
        SetLatch(g_shared->launcher_latch);
}

Shared& shared() {
    if (!g_shared)
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "pg_ingest shared memory is not set up", {},
              "Add pg_ingest to shared_preload_libraries and restart the server.");
    return *g_shared;
}

struct Locked {
    explicit Locked(LWLockMode mode) { LWLockAcquire(shared().lock, mode); }
    ~Locked() { LWLockRelease(g_shared->lock); }
};

extern "C" {
// A before_shmem_exit callback: plain C, no allocation.
static void worker_detach(int, Datum arg) {
    const int slot = DatumGetInt32(arg);
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    Slot& s = g_shared->slots[slot];
    if (s.timed_out && s.job_id != 0) {
        for (TimedOutJob& t : g_shared->timed_out_jobs)
            if (t.job_id == 0) {
                t.dboid = s.dboid;
                t.job_id = s.job_id;
                break;
            }
        if (DbEntry* e = find_db(s.dboid, false))
            e->wanted = true;  // a worker there records the job's failure
    }
    s.in_use = false;
    s.pid = 0;
    s.job_id = 0;
    s.cancel_requested = false;
    s.timed_out = false;
    wake_launcher_locked();
    LWLockRelease(g_shared->lock);
}
}

}  // namespace

extern "C" {
static void pgi_shmem_request(void) {
    pg_ingest::guard([] {
        if (prev_request_hook)
            prev_request_hook();
        pg_call([] {
            RequestAddinShmemSpace(MAXALIGN(sizeof(Shared)));
            RequestNamedLWLockTranche("pg_ingest", 1);
        });
    });
}

static void pgi_shmem_startup(void) {
    pg_ingest::guard([] {
        if (prev_startup_hook)
            prev_startup_hook();
        pg_call([] {
            LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
            bool found = false;
            g_shared = static_cast<Shared*>(ShmemInitStruct("pg_ingest", sizeof(Shared), &found));
            if (!found) {
                memset(g_shared, 0, sizeof(Shared));
                g_shared->lock = &(GetNamedLWLockTranche("pg_ingest"))->lock;
                for (Slot& s : g_shared->slots)
                    pg_atomic_init_u64(&s.rows_applied, 0);
            }
            LWLockRelease(AddinShmemInitLock);
        });
    });
}

// Commit of a transaction that submitted or retried a job: now the workers can see it.
static void pgi_xact_callback(XactEvent event, void*) {
    // PREPARE ends the session's part: the prepared transaction's COMMIT PREPARED (from any
    // session) has no flag to wake the launcher with, so its jobs start at the next naptime.
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE)
        return;
    const bool wake = g_wake_at_commit && event == XACT_EVENT_COMMIT;
    g_wake_at_commit = false;
    if (!wake || !g_shared)
        return;
    // Plain C with no allocation: an error after commit cannot be reported anyway.
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DbEntry* e = find_db(MyDatabaseId, true)) {
        e->wanted = true;
        e->has_extension = true;
    }
    wake_launcher_locked();
    LWLockRelease(g_shared->lock);
}

// A backend that exits while it waits for a job (pg_terminate_backend: the FATAL skips the C++
// destructor that unregisters it) frees its waiter entry here, or the entry would stay taken.
// Plain C with no allocation.
static void pgi_waiter_exit(int, Datum) {
    if (!g_shared || LWLockHeldByMe(g_shared->lock))
        return;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (Waiter& w : g_shared->waiters)
        if (w.pid == MyProcPid) {
            w.job_id = 0;
            w.pid = 0;
            w.latch = nullptr;
        }
    LWLockRelease(g_shared->lock);
}
}

void install_shmem_hooks() {
    prev_request_hook = shmem_request_hook;
    shmem_request_hook = pgi_shmem_request;
    prev_startup_hook = shmem_startup_hook;
    shmem_startup_hook = pgi_shmem_startup;
}

void install_xact_callback() {
    pg_call([] { RegisterXactCallback(pgi_xact_callback, nullptr); });
}

void launcher_attach() {
    Locked l(LW_EXCLUSIVE);
    shared().launcher_latch = MyLatch;
}

int release_unattached_slots() {
    Locked l(LW_EXCLUSIVE);
    int n = 0;
    for (Slot& s : shared().slots) {
        if (!s.in_use || s.pid != 0)
            continue;
        // The generation stays: a late worker of this reservation finds the slot free, or
        // reserved again under a newer generation, and exits without running a job.
        s.in_use = false;
        if (DbEntry* e = find_db(s.dboid, true))
            e->wanted = true;
        n++;
    }
    return n;
}

std::vector<Oid> take_wanted_databases() {
    std::vector<Oid> out;
    out.reserve(max_databases);
    Locked l(LW_EXCLUSIVE);
    for (DbEntry& e : shared().dbs)
        if (OidIsValid(e.dboid) && e.wanted)
            out.push_back(e.dboid);
    return out;
}

void want_database(Oid dboid, bool only_if_known_extension) {
    Locked l(LW_EXCLUSIVE);
    DbEntry* e = find_db(dboid, !only_if_known_extension);
    if (e && (!only_if_known_extension || e->has_extension))
        e->wanted = true;
}

void set_has_extension(Oid dboid, bool has) {
    Locked l(LW_EXCLUSIVE);
    DbEntry* e = find_db(dboid, has);
    if (!e)
        return;
    if (has || e->wanted)
        e->has_extension = has;  // wanted: a job was submitted there since the worker looked
    else
        e->dboid = InvalidOid;  // nothing to do there until a job is submitted
}

void forget_databases_except(const std::vector<Oid>& existing) {
    Locked l(LW_EXCLUSIVE);
    for (DbEntry& e : shared().dbs)
        if (OidIsValid(e.dboid) && !e.wanted &&
            std::find(existing.begin(), existing.end(), e.dboid) == existing.end())
            e.dboid = InvalidOid;
}

bool take_database_table_full() {
    Locked l(LW_EXCLUSIVE);
    const bool full = shared().db_table_full;
    shared().db_table_full = false;
    return full;
}

std::vector<Oid> databases_with_extension() {
    std::vector<Oid> out;
    out.reserve(max_databases);
    Locked l(LW_SHARED);
    for (DbEntry& e : shared().dbs)
        if (OidIsValid(e.dboid) && e.has_extension)
            out.push_back(e.dboid);
    return out;
}

std::optional<SlotTicket> reserve_slot(Oid dboid) {
    Locked l(LW_EXCLUSIVE);
    Shared& sh = shared();
    int running = 0;
    for (Slot& s : sh.slots)
        running += s.in_use ? 1 : 0;
    if (running >= guc::max_workers)
        return std::nullopt;
    for (int i = 0; i < guc::max_worker_slots; i++) {
        Slot& s = sh.slots[i];
        if (s.in_use)
            continue;
        s.in_use = true;
        s.generation = ++sh.last_generation;
        s.pid = 0;
        s.dboid = dboid;
        s.job_id = 0;
        s.cancel_requested = false;
        s.timed_out = false;
        pg_atomic_write_u64(&s.rows_applied, 0);
        if (DbEntry* e = find_db(dboid, false))
            e->wanted = false;
        return SlotTicket{i, s.generation};
    }
    return std::nullopt;
}

void release_slot(const SlotTicket& ticket) {
    Locked l(LW_EXCLUSIVE);
    Slot& s = shared().slots[ticket.slot];
    if (s.generation != ticket.generation)
        return;
    s.in_use = false;
    s.pid = 0;
    // Try again on the next pass.
    if (DbEntry* e = find_db(s.dboid, false))
        e->wanted = true;
}

void release_slot_if_unattached(const SlotTicket& ticket) {
    Locked l(LW_EXCLUSIVE);
    Slot& s = shared().slots[ticket.slot];
    if (s.generation == ticket.generation && s.in_use && s.pid == 0)
        s.in_use = false;
}

int running_workers() {
    Locked l(LW_SHARED);
    int n = 0;
    for (Slot& s : shared().slots)
        n += s.in_use ? 1 : 0;
    return n;
}

Oid slot_database(int slot) {
    Locked l(LW_SHARED);
    return shared().slots[slot].dboid;
}

bool worker_attach(const SlotTicket& ticket) {
    {
        Locked l(LW_EXCLUSIVE);
        Slot& s = shared().slots[ticket.slot];
        if (!s.in_use || s.generation != ticket.generation)
            return false;
        s.pid = MyProcPid;
    }
    pg_call([&] { before_shmem_exit(worker_detach, Int32GetDatum(ticket.slot)); });
    return true;
}

void set_slot_job(int slot, int64_t job_id) {
    Locked l(LW_EXCLUSIVE);
    Slot& s = shared().slots[slot];
    s.job_id = job_id;
    s.cancel_requested = false;
    s.timed_out = false;
    pg_atomic_write_u64(&s.rows_applied, 0);
}

void mark_slot_timed_out(int slot) {
    // From a timeout handler: one store, no lock (the slot is this worker's own).
    if (g_shared)
        g_shared->slots[slot].timed_out = 1;
}

std::vector<int64_t> take_timed_out_jobs(Oid dboid) {
    std::vector<int64_t> ids;
    ids.reserve(max_timed_out);  // no allocation under the lock
    Locked l(LW_EXCLUSIVE);
    for (TimedOutJob& t : shared().timed_out_jobs)
        if (t.job_id != 0 && t.dboid == dboid) {
            ids.push_back(t.job_id);
            t.job_id = 0;
        }
    return ids;
}

void set_slot_progress(int slot, int64_t rows_applied) {
    pg_atomic_write_u64(&shared().slots[slot].rows_applied, static_cast<uint64>(rows_applied));
}

bool cancel_requested(int slot, int64_t job_id) {
    Locked l(LW_SHARED);
    const Slot& s = shared().slots[slot];
    return s.job_id == job_id && s.cancel_requested;
}

bool note_restored_jobs(Oid dboid, uint64_t signature) {
    Locked l(LW_EXCLUSIVE);
    DbEntry* e = find_db(dboid, false);
    if (!e)
        return signature != 0;  // not tracked: report every time rather than never
    const bool changed = e->restored_signature != signature;
    e->restored_signature = signature;
    return changed;
}

std::vector<int64_t> running_job_ids() {
    std::vector<int64_t> out;
    out.reserve(guc::max_worker_slots);
    Locked l(LW_SHARED);
    for (Slot& s : shared().slots)
        if (s.in_use && s.pid != 0 && s.job_id != 0 && s.dboid == MyDatabaseId)
            out.push_back(s.job_id);
    return out;
}

void request_worker(Oid dboid) {
    Locked l(LW_EXCLUSIVE);
    if (DbEntry* e = find_db(dboid, true))
        e->wanted = true;
    wake_launcher_locked();
}

void register_waiter(int64_t job_id) {
    static bool exit_callback_registered = false;
    if (!exit_callback_registered) {
        pg_call([] { before_shmem_exit(pgi_waiter_exit, 0); });
        exit_callback_registered = true;
    }
    Locked l(LW_EXCLUSIVE);
    for (Waiter& w : shared().waiters)
        if (w.job_id == 0 || w.pid == MyProcPid) {
            w.job_id = job_id;
            w.pid = MyProcPid;
            w.latch = MyLatch;
            return;
        }
}

void unregister_waiter() {
    if (!g_shared)
        return;
    Locked l(LW_EXCLUSIVE);
    for (Waiter& w : g_shared->waiters)
        if (w.pid == MyProcPid) {
            w.job_id = 0;
            w.pid = 0;
            w.latch = nullptr;
        }
}

void wake_waiters(int64_t job_id) {
    Locked l(LW_SHARED);
    for (Waiter& w : shared().waiters)
        if (w.job_id == job_id && w.latch)
            SetLatch(w.latch);
}

void wake_launcher_at_commit() {
    (void)shared();
    g_wake_at_commit = true;
}

int job_worker_pid(int64_t job_id) {
    Locked l(LW_SHARED);
    for (Slot& s : shared().slots)
        if (s.in_use && s.pid != 0 && s.job_id == job_id && s.dboid == MyDatabaseId)
            return s.pid;
    return 0;
}

std::optional<int64_t> rows_applied(int64_t job_id) {
    Locked l(LW_SHARED);
    for (Slot& s : shared().slots)
        if (s.in_use && s.job_id == job_id && s.dboid == MyDatabaseId)
            return static_cast<int64_t>(pg_atomic_read_u64(&s.rows_applied));
    return std::nullopt;
}

bool request_cancel(int64_t job_id) {
    bool sent = false;
    Locked l(LW_EXCLUSIVE);
    for (Slot& s : shared().slots)
        if (s.in_use && s.pid != 0 && s.job_id == job_id && s.dboid == MyDatabaseId) {
            s.cancel_requested = true;
            // The worker's SIGINT handler is PostgreSQL's statement cancel: the apply fails
            // with 57014 at its next interrupt check, and the worker records CANCEL. Sent under
            // the lock: the worker cannot move on to another job (set_slot_job) meanwhile.
            kill(s.pid, SIGINT);
            sent = true;
        }
    return sent;
}

}  // namespace pg_ingest::jobs
