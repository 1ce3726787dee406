// Module entry: _PG_init only wires the modules together.
#include "boundary.hpp"
#include "copy_hook.hpp"
#include "guc.hpp"
#include "job_shmem.hpp"
#include "job_worker.hpp"
#include "merge.hpp"

extern "C" {
#include "miscadmin.h"

PG_MODULE_MAGIC;

void _PG_init(void);

void _PG_init(void) {
    // The COPY hook, shared memory and the background workers must be installed in every backend at
    // start, so loading on first use would leave some sessions without them.
    if (!process_shared_preload_libraries_in_progress)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("pg_ingest must be loaded via shared_preload_libraries"),
                        errhint("Add pg_ingest to shared_preload_libraries in postgresql.conf and "
                                "restart the server, then run CREATE EXTENSION pg_ingest.")));
    pg_ingest::guard([] {
        pg_ingest::guc::init();
        pg_ingest::copy_hook::init();
        pg_ingest::jobs::install_shmem_hooks();
        pg_ingest::jobs::install_xact_callback();
        pg_ingest::install_merge_xact_callback();
        pg_ingest::jobs::register_launcher();
    });
}
}
