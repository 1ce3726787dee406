// The job catalog (ingest.async_load_job / ingest.async_load_reject): reading and writing jobs,
// the identities involved, notifications. Writes run as the extension owner, the only role
// that may write these tables; callers check who may see or control a job first.
#pragma once

#include "merge.hpp"
#include "spi.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pg_ingest::jobs {

struct Job {
    int64_t id = 0;
    std::optional<std::string> job_key;
    Oid owner = InvalidOid;
    Oid target = InvalidOid;
    std::string state;
    std::string conflict_mode;
    std::vector<std::string> conflict_columns;
    std::vector<std::string> update_columns;
    std::string overwrite;
    Oid overwrite_partition = InvalidOid;
    std::string exception_mode;
    std::optional<int64_t> reject_limit;
    bool keep_staging = false;
    Oid staging = InvalidOid;
    int attempts = 0;
};

// Reads a job (inside an spi::Connection). for_update locks the row.
std::optional<Job> load_job(int64_t id, bool for_update = false);

// The extension owner: owner of the job table.
Oid service_user();

// Runs the scope as another role (SECURITY_LOCAL_USERID_CHANGE, plus extra flags), restoring
// the caller's identity on exit, including exceptional exit.
class UserScope {
  public:
    UserScope(Oid user, int extra_flags = 0);
    ~UserScope();
    UserScope(const UserScope&) = delete;
    UserScope& operator=(const UserScope&) = delete;

  private:
    Oid m_saved_user;
    int m_saved_sec;
};

// Runs the scope at a GUC nest level of its own, optionally with `search_path` set, and
// discards every setting made inside it on exit (user code's set_config(..., false) too): code
// run as a job's owner must not leave settings behind for the worker's own statements, which
// run as a superuser. Exit by exception leaves the level to the transaction's abort.
class GucScope {
  public:
    explicit GucScope(const char* search_path);
    ~GucScope();
    GucScope(const GucScope&) = delete;
    GucScope& operator=(const GucScope&) = delete;

  private:
    int m_level;
    int m_uncaught;  // std::uncaught_exceptions() when the scope began
};

// The search_path of the worker's own statements (run as the superuser background workers
// connect as): nothing a job's owner, or the database's owner, can put objects in.
constexpr const char* k_service_search_path = "pg_catalog, pg_temp";

// The columns an ordered staging table (begin_async_load(ordered => true)) adds after the
// loaded ones: the chunk number, from the ingest.stage_chunk setting of the session that
// staged the row, and the row's number within its session, from an identity column. A job
// applies its rows in (chunk, row) order, so chunks staged over several connections keep the
// order the loader gave them. The row column being an identity column marks the table ordered.
constexpr const char* k_order_chunk = "_pg_ingest_chunk";
constexpr const char* k_order_row = "_pg_ingest_row";

// "ingest_staging.job_<id>", quoted.
std::string staging_name(int64_t id);
// As the current user; no error when already gone. False when other objects (another
// role's view) depend on the table: it is kept, with a WARNING, and the caller goes on.
bool drop_staging(int64_t id);

// NOTIFY ingest_async_load, '<id>:<state>' (delivered at commit).
void notify_state(int64_t id, const std::string& state);

// The role's name, quoted for SQL.
std::string quoted_role(Oid role);

// Whether `role` may see and control jobs owned by `owner`: it has the owner's privileges
// (owner itself, a member, a superuser) or those of ingest_admin.
bool may_control(Oid role, Oid owner);

bool is_terminal(const std::string& state);

// Installations (0.5.0). ingest.installation holds one random id, made by CREATE EXTENSION and
// never dumped; each job records the installation it was begun (or submitted, retried,
// canceled, resumed) in. A job of another installation was restored from a dump: workers
// neither claim it, nor recover it, nor remove it by retention (the restore may not be
// complete) until ingest.resume_restored_jobs() adopts it.

// Whether the catalog has installations (0.5.0 or later; a library newer than the catalog
// serves an older one until ALTER EXTENSION UPDATE, where every job is this installation's).
bool has_installations();

// SQL: true when job `alias` belongs to this installation ("true" before 0.5.0).
std::string of_this_installation(const char* alias);

// SQL for this installation's id, for a job that it begins or takes over; none before 0.5.0.
// Inside an spi::Connection; raises 55000 when ingest.installation does not hold one row.
std::optional<std::string> this_installation();

// The same as an item of the SET list of an UPDATE: ", installation = ..." ("" before 0.5.0).
std::string adopt_clause();

}  // namespace pg_ingest::jobs
