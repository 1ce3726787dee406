#include "job_catalog.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/genam.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"
}

#include <exception>

namespace pg_ingest::jobs {

namespace {

std::vector<std::string> text_array_value(uint64 row, int col) {
    bool isnull;
    Datum d = pg_call([&] {
        return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
    });
    if (isnull)
        return {};
    return text_array_to_strings(d, "stored column names");
}

}  // namespace

std::optional<Job> load_job(int64_t id, bool for_update) {
    std::string sql =
        "SELECT id, job_key, owner::oid, target::oid, state::text, conflict_mode, "
        "conflict_columns, update_columns, overwrite, overwrite_partition::oid, exception_mode, "
        "reject_limit, keep_staging, staging::oid, attempts FROM ingest.async_load_job WHERE id = "
        "$1";
    if (for_update)
        sql += " FOR UPDATE";
    if (spi::exec(sql, {spi::int8_arg(id)}) == 0)
        return std::nullopt;
    Job j;
    j.id = spi::get_int64(0, 1);
    j.job_key = spi::get_opt_text(0, 2);
    j.owner = spi::get_oid(0, 3);
    j.target = spi::get_oid(0, 4);
    j.state = spi::get_text(0, 5);
    j.conflict_mode = spi::get_text(0, 6);
    j.conflict_columns = text_array_value(0, 7);
    j.update_columns = text_array_value(0, 8);
    j.overwrite = spi::get_text(0, 9);
    j.overwrite_partition = spi::get_oid(0, 10);
    j.exception_mode = spi::get_text(0, 11);
    if (!spi::is_null(0, 12))
        j.reject_limit = spi::get_int64(0, 12);
    j.keep_staging = spi::get_bool(0, 13);
    j.staging = spi::get_oid(0, 14);
    j.attempts = spi::get_int32(0, 15);
    return j;
}

// pg_extension.extnamespace (PostgreSQL 15 does not export get_extension_schema()). Plain C
// calls only: run under pg_call.
static Oid extension_schema(Oid ext) {
    Relation rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
    SysScanDesc scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
    HeapTuple tup = systable_getnext(scan);
    const Oid nsp =
        HeapTupleIsValid(tup) ? ((Form_pg_extension)GETSTRUCT(tup))->extnamespace : InvalidOid;
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return nsp;
}

Oid service_user() {
    return pg_call([] {
        Oid nsp = get_namespace_oid("ingest", false);
        Oid rel = get_relname_relid("async_load_job", nsp);
        if (!OidIsValid(rel))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("async load jobs need pg_ingest 0.2.0 or later"),
                            errhint("Run ALTER EXTENSION pg_ingest UPDATE.")));
        // The workers write this catalog as a superuser, and the job functions as its owner:
        // it must be the extension's own, in the extension's schema, and that schema must be
        // a superuser's. A schema "ingest" that another role made before CREATE EXTENSION
        // reused is that role's: it could rename it and put a table of its own, with
        // triggers, in the catalog's place.
        const Oid ext = get_extension_oid("pg_ingest", false);
        HeapTuple nsp_tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
        if (!HeapTupleIsValid(nsp_tup))
            elog(ERROR, "cache lookup failed for namespace %u", nsp);
        const Oid nsp_owner = ((Form_pg_namespace)GETSTRUCT(nsp_tup))->nspowner;
        ReleaseSysCache(nsp_tup);
        if (extension_schema(ext) != nsp || getExtensionOfObject(RelationRelationId, rel) != ext)
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("ingest.async_load_job is not the job catalog of pg_ingest"),
                            errdetail("Schema \"ingest\" is not the extension's schema, or the "
                                      "table is not a member of the extension."),
                            errhint("A superuser must restore the extension's schema and "
                                    "objects; async load jobs are refused until then.")));
        if (!superuser_arg(nsp_owner))
            ereport(ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                     errmsg("schema \"ingest\" is owned by role \"%s\", which is not a "
                            "superuser",
                            GetUserNameFromId(nsp_owner, false)),
                     errdetail("Its owner could replace the job catalog that the background "
                               "workers write as a superuser."),
                     errhint("As a superuser, check the schema's objects and run ALTER SCHEMA "
                             "ingest OWNER TO a superuser; async load jobs are refused until "
                             "then.")));
        HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
        if (!HeapTupleIsValid(tup))
            elog(ERROR, "cache lookup failed for relation %u", rel);
        Oid owner = ((Form_pg_class)GETSTRUCT(tup))->relowner;
        ReleaseSysCache(tup);
        return owner;
    });
}

UserScope::UserScope(Oid user, int extra_flags) {
    GetUserIdAndSecContext(&m_saved_user, &m_saved_sec);
    SetUserIdAndSecContext(user, m_saved_sec | SECURITY_LOCAL_USERID_CHANGE | extra_flags);
}

UserScope::~UserScope() {
    SetUserIdAndSecContext(m_saved_user, m_saved_sec);
}

GucScope::GucScope(const char* search_path) : m_uncaught(std::uncaught_exceptions()) {
    m_level = pg_call([&] {
        const int level = NewGUCNestLevel();
        if (search_path)
            (void)set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
                                    GUC_ACTION_SAVE, true, 0, false);
        return level;
    });
}

GucScope::~GucScope() {
    if (std::uncaught_exceptions() > m_uncaught)
        return;  // the transaction's abort pops the level (AtEOXact_GUC at abort)
    try {
        pg_call([&] { AtEOXact_GUC(false, m_level); });
    } catch (...) {
        // Not reached in practice (AtEOXact_GUC reports no errors); never throw from here.
    }
}

std::string staging_name(int64_t id) {
    return "ingest_staging." + std::string(pg_call([&] {
               return quote_identifier(psprintf("job_%lld", static_cast<long long>(id)));
           }));
}

bool drop_staging(int64_t id) {
    const std::string name = staging_name(id);
    try {
        with_subtransaction([&] { spi::exec("DROP TABLE IF EXISTS " + name); });
        return true;
    } catch (const PgError& e) {
        if (e.sqlerrcode() != ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST)
            throw;
        // Another role's object built on it (a view): the job must still end, and the other
        // role's object is not ours to drop. The table stays until someone drops that object.
        const std::string detail = e.data()->detail ? e.data()->detail : "";
        e.release();
        pg_call([&] {
            ereport(WARNING,
                    (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
                     errmsg("pg_ingest: staging table %s of async load job %lld is kept: other "
                            "objects depend on it",
                            name.c_str(), static_cast<long long>(id)),
                     detail.empty() ? 0 : errdetail_internal("%s", detail.c_str()),
                     errhint("Drop those objects; the table is then dropped when the job's "
                             "retention ends.")));
        });
        return false;
    }
}

void notify_state(int64_t id, const std::string& state) {
    spi::exec("SELECT pg_catalog.pg_notify('ingest_async_load', $1)",
              {spi::text_arg(std::to_string(id) + ":" + state)});
}

std::string quoted_role(Oid role) {
    return pg_call([&] { return quote_identifier(GetUserNameFromId(role, false)); });
}

bool may_control(Oid role, Oid owner) {
    return pg_call([&] {
        if (has_privs_of_role(role, owner))
            return true;
        Oid admin = get_role_oid("ingest_admin", true);
        return OidIsValid(admin) && has_privs_of_role(role, admin);
    });
}

bool is_terminal(const std::string& state) {
    return state == "FINISH" || state == "FAIL" || state == "CANCEL";
}

bool has_installations() {
    return pg_call([] {
        const Oid nsp = get_namespace_oid("ingest", true);
        return OidIsValid(nsp) && OidIsValid(get_relname_relid("installation", nsp));
    });
}

namespace {

// The id jobs record: ingest.installation's random id made particular to this database (a hash
// with its OID), since databases copied from a template that has pg_ingest share that table's
// row, and a dump of one restored into another must still be told apart. pg_upgrade keeps
// database OIDs (PostgreSQL 15), so the id survives it; a copy made with CREATE DATABASE ...
// TEMPLATE of a database with jobs has them as restored ones.
constexpr const char* k_installation_id =
    "(SELECT pg_catalog.md5(pg_catalog.concat(i.id, ':', d.oid))::pg_catalog.uuid "
    "FROM ingest.installation i, pg_catalog.pg_database d "
    "WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())";

}  // namespace

std::string of_this_installation(const char* alias) {
    if (!has_installations())
        return "true";
    return std::string(alias) + ".installation OPERATOR(pg_catalog.=) " + k_installation_id;
}

std::optional<std::string> this_installation() {
    if (!has_installations())
        return std::nullopt;
    if (spi::exec("SELECT FROM ingest.installation") != 1)
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
              "ingest.installation does not hold exactly one installation id",
              "Async load jobs cannot be begun or queued without it.",
              "A superuser can give it a new one (DELETE FROM ingest.installation; INSERT INTO "
              "ingest.installation VALUES (pg_catalog.gen_random_uuid())); the jobs begun "
              "before are then taken over with ingest.resume_restored_jobs().");
    return std::string(k_installation_id);
}

std::string adopt_clause() {
    const std::optional<std::string> id = this_installation();
    return id ? ", installation = " + *id : std::string();
}

}  // namespace pg_ingest::jobs
