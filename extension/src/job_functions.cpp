// SQL functions of async load jobs: begin, submit, cancel, retry, wait, and live progress.
// Each checks the caller (GetUserId() on entry) first, then writes the job catalog as the
// extension owner. See job_catalog.hpp and the README ("Async load jobs").
#include "conflict_target.hpp"
#include "cursor_source.hpp"
#include "job_catalog.hpp"
#include "job_shmem.hpp"
#include "merge.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/fmgrprotos.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <vector>

using namespace pg_ingest;
using namespace pg_ingest::jobs;

namespace {

std::string text_arg(FunctionCallInfo fcinfo, int n, const char* what) {
    if (PG_ARGISNULL(n))
        raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, format("%s must not be NULL", what));
    return text_to_string(pg_call([&] { return PG_GETARG_TEXT_PP(n); }));
}

spi::Arg text_array_arg(const std::vector<std::string>& v) {
    if (v.empty())
        return spi::Arg{TEXTARRAYOID, Datum(0), true};
    std::vector<Datum> d;
    for (const std::string& s : v)
        d.push_back(PointerGetDatum(string_to_text(s)));
    return spi::Arg{TEXTARRAYOID, pg_call([&] {
                        return PointerGetDatum(construct_array(d.data(), static_cast<int>(d.size()),
                                                               TEXTOID, -1, false, TYPALIGN_INT));
                    })};
}

Datum state_datum(Oid enum_type, const std::string& state) {
    return pg_call([&] {
        return DirectFunctionCall2(enum_in, CStringGetDatum(state.c_str()),
                                   ObjectIdGetDatum(enum_type));
    });
}

Datum return_state(FunctionCallInfo fcinfo, const std::string& state) {
    return state_datum(pg_call([&] { return get_fn_expr_rettype(fcinfo->flinfo); }), state);
}

[[noreturn]] void no_such_job(int64_t id) {
    raise(ERRCODE_UNDEFINED_OBJECT, format("async load job %lld does not exist", (long long)id), {},
          "ingest.get_async_load_job() lists the jobs you can see.");
}

// The job, if the caller may see and control it; else 42704 (another role's job is reported
// exactly like a missing one).
Job visible_job(int64_t id, Oid caller, bool for_update = false) {
    std::optional<Job> job = load_job(id, for_update);
    if (!job || !may_control(caller, job->owner))
        no_such_job(id);
    return *job;
}

[[noreturn]] void wrong_state(const Job& job, const char* action, const char* detail) {
    raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
          format("cannot %s async load job %lld: it is %s", action, (long long)job.id,
                 job.state.c_str()),
          detail, "ingest.get_async_load_job(id) shows the job's state and error.");
}

// Column definitions of a staging table for `rel`: the loaded columns (given, else every live,
// non-generated one), with the
// target's names, types and collations; no constraints, so bad rows reach the apply step
// (which can reject them one by one) instead of failing the staging COPY.
std::string staging_columns(Relation rel, const std::vector<AttrNumber>& attnums) {
    std::string defs;
    TupleDesc d = RelationGetDescr(rel);
    for (AttrNumber a : attnums) {
        Form_pg_attribute att = TupleDescAttr(d, a - 1);
        const char* name = pg_call([&] { return quote_identifier(NameStr(att->attname)); });
        // A domain's base type: its constraints are checked when the rows are applied, where
        // exception mode 'ignore' makes a violation a rejected row, as for the table's own.
        // So for an array of a domain: an array of the domain's base type. (A composite type
        // with a domain field keeps it: its values are checked while staging.)
        const char* type = pg_call([&] {
            int32 typmod = att->atttypmod;
            Oid base = getBaseTypeAndTypmod(att->atttypid, &typmod);
            const Oid element = get_element_type(base);
            if (OidIsValid(element) && get_typtype(element) == TYPTYPE_DOMAIN) {
                int32 element_typmod = typmod;
                const Oid array = get_array_type(getBaseTypeAndTypmod(element, &element_typmod));
                if (OidIsValid(array)) {
                    base = array;
                    typmod = element_typmod;
                }
            }
            return format_type_with_typemod(base, typmod);
        });
        std::string def = std::string(name) + " " + type;
        if (OidIsValid(att->attcollation) && att->attcollation != DEFAULT_COLLATION_OID)
            def += std::string(" COLLATE ") +
                   pg_call([&] { return generate_collation_name(att->attcollation); });
        defs += (defs.empty() ? "" : ", ") + def;
    }
    return defs;
}

std::vector<AttrNumber> insertable_columns(Relation rel) {
    std::vector<AttrNumber> out;
    TupleDesc d = RelationGetDescr(rel);
    for (int i = 0; i < d->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(d, i);
        if (!att->attisdropped && !att->attgenerated)
            out.push_back(att->attnum);
    }
    return out;
}

Datum begin_result(FunctionCallInfo fcinfo, int64_t id, Oid staging, const std::string& state) {
    return pg_call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "return type must be a row type");
        desc = BlessTupleDesc(desc);
        Datum v[3] = {Int64GetDatum(id), ObjectIdGetDatum(staging),
                      DirectFunctionCall2(enum_in, CStringGetDatum(state.c_str()),
                                          ObjectIdGetDatum(TupleDescAttr(desc, 2)->atttypid))};
        bool n[3] = {false, !OidIsValid(staging), false};
        return HeapTupleGetDatum(heap_form_tuple(desc, v, n));
    });
}

// The roles other than its owner that hold a privilege on relation `rel` (ACL_ID_PUBLIC for
// PUBLIC), once each.
std::vector<Oid> other_grantees(Oid rel) {
    int n = 0;
    const Oid* oids = pg_call([&] {
        HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
        if (!HeapTupleIsValid(tup))
            elog(ERROR, "cache lookup failed for relation %u", rel);
        const Oid owner = ((Form_pg_class)GETSTRUCT(tup))->relowner;
        bool isnull;
        const Datum d = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relacl, &isnull);
        Oid* out = nullptr;
        if (!isnull) {
            Acl* acl = DatumGetAclPCopy(d);
            const AclItem* items = ACL_DAT(acl);
            out = static_cast<Oid*>(palloc(sizeof(Oid) * (ACL_NUM(acl) + 1)));
            for (int i = 0; i < ACL_NUM(acl); i++)
                if (items[i].ai_grantee != owner)
                    out[n++] = items[i].ai_grantee;
        }
        ReleaseSysCache(tup);
        return out;
    });
    std::vector<Oid> roles(oids, oids + n);
    std::sort(roles.begin(), roles.end());
    roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
    return roles;
}

// Revokes `privileges` on `rel` (`kind` TABLE or SEQUENCE, SQL name `name`) from every role but
// its owner and `keep` (a role; InvalidOid: none), PUBLIC included.
void revoke_from_others(Oid rel, const char* kind, const std::string& name, const char* privileges,
                        Oid keep = InvalidOid) {
    std::string roles;
    for (Oid role : other_grantees(rel))
        if (role == ACL_ID_PUBLIC || role != keep)
            roles += (roles.empty() ? "" : ", ") +
                     (role == ACL_ID_PUBLIC ? std::string("PUBLIC") : quoted_role(role));
    if (!roles.empty())
        spi::exec(format("REVOKE %s ON %s ", privileges, kind) + name + " FROM " + roles +
                  " CASCADE");
}

// Whether the live process `pid` waits for a lock that this backend holds (pg_blocking_pids).
// What the lookup allocates goes with `cxt`, which is reset.
bool blocked_by_this_backend(int pid, MemoryContext cxt) {
    return pg_call([&] {
        const MemoryContext old = MemoryContextSwitchTo(cxt);
        ArrayType* pids =
            DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(pid)));
        Datum* elems;
        bool* nulls;
        int n;
        deconstruct_array(pids, INT4OID, sizeof(int32), true, TYPALIGN_INT, &elems, &nulls, &n);
        bool found = false;
        for (int i = 0; i < n; i++)
            if (!nulls[i] && DatumGetInt32(elems[i]) == MyProcPid)
                found = true;
        MemoryContextSwitchTo(old);
        MemoryContextReset(cxt);
        return found;
    });
}

// Moves the job to CANCEL if `condition` (on its state) still holds; drops its staging unless
// kept. False when the state changed meanwhile.
// A job restored from a dump becomes this installation's (retention applies to it again).
bool cancel_now(int64_t id, const char* condition) {
    if (spi::exec(std::string("UPDATE ingest.async_load_job SET state = 'CANCEL', finished_at = "
                              "pg_catalog.clock_timestamp(), worker_pid = NULL, staging = CASE "
                              "WHEN keep_staging THEN staging END") +
                      adopt_clause() + " WHERE id = $1 AND " + condition +
                      " RETURNING keep_staging",
                  {spi::int8_arg(id)}) != 1)
        return false;
    if (!spi::get_bool(0, 1))
        drop_staging(id);
    notify_state(id, "CANCEL");
    return true;
}

}  // namespace

PGI_FUNCTION(ingest_begin_async_load) {
    if (PG_ARGISNULL(0))
        raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, "target must not be NULL");
    const Oid target = PG_GETARG_OID(0);
    const std::string mode_name = text_arg(fcinfo, 1, "conflict_mode");
    const ConflictMode mode = parse_conflict_mode(mode_name, true);
    const std::vector<std::string> conflict_cols = column_names_arg(fcinfo, 2, "conflict_columns");
    const std::vector<std::string> update_cols = column_names_arg(fcinfo, 3, "update_columns");
    std::optional<std::string> job_key;
    if (!PG_ARGISNULL(4))
        job_key = text_arg(fcinfo, 4, "job_key");
    const std::string overwrite = text_arg(fcinfo, 5, "overwrite");
    const Oid partition = PG_ARGISNULL(6) ? InvalidOid : PG_GETARG_OID(6);
    const std::string exception_mode = text_arg(fcinfo, 7, "exception_mode");
    std::optional<int64_t> reject_limit;
    if (!PG_ARGISNULL(8))
        reject_limit = PG_GETARG_INT64(8);
    const bool keep_staging = !PG_ARGISNULL(9) && PG_GETARG_BOOL(9);
    const std::vector<std::string> only_columns = column_names_arg(fcinfo, 10, "columns");
    const bool ordered = PG_NARGS() > 11 && !PG_ARGISNULL(11) && PG_GETARG_BOOL(11);

    if (overwrite != "none" && overwrite != "table" && overwrite != "partition")
        raise(ERRCODE_INVALID_PARAMETER_VALUE,
              format("unknown overwrite \"%s\"", overwrite.c_str()), {},
              "Use 'none', 'table' or 'partition'.");
    if ((overwrite == "partition") != OidIsValid(partition))
        raise(ERRCODE_INVALID_PARAMETER_VALUE,
              "overwrite_partition must be given exactly when overwrite is 'partition'");
    // The apply deletes the old rows before it merges: an update would find none of them.
    if (overwrite != "none" && mode == ConflictMode::update)
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format("conflict mode 'update' cannot be used with overwrite '%s'", overwrite.c_str()),
            "The overwrite deletes every existing row before the job's rows are applied, so "
            "an update would find no row to update and leave the target empty.",
            "Use conflict mode 'upsert' or 'none' to replace the contents, or overwrite "
            "'none' to update rows in place.");
    if (exception_mode != "strict" && exception_mode != "ignore")
        raise(ERRCODE_INVALID_PARAMETER_VALUE,
              format("unknown exception_mode \"%s\"", exception_mode.c_str()), {},
              "Use 'strict' (the first bad row fails the job) or 'ignore' (bad rows are "
              "rejected, the rest load).");
    if (reject_limit && *reject_limit < 0)
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "reject_limit must not be negative");
    if (reject_limit && exception_mode != "ignore")
        raise(ERRCODE_INVALID_PARAMETER_VALUE,
              "reject_limit applies to exception_mode 'ignore' only");
    if (job_key && job_key->empty())
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "job_key must not be empty");

    const Oid caller = GetUserId();
    const Oid svc = service_user();
    spi::Connection spi_conn;

    // A known key returns its job: a restarted loader must never load twice.
    auto existing = [&]() -> std::optional<Datum> {
        UserScope as_service(svc);
        if (spi::exec("SELECT id, staging::oid, state::text, target::oid FROM "
                      "ingest.async_load_job WHERE owner = $1 AND job_key = $2",
                      {spi::oid_arg(caller), spi::text_arg(job_key)}) == 0)
            return std::nullopt;
        const int64_t id = spi::get_int64(0, 1);
        if (spi::get_oid(0, 4) != target)
            raise(ERRCODE_INVALID_PARAMETER_VALUE,
                  format("job_key \"%s\" already names async load job %lld, for another target",
                         job_key->c_str(), (long long)id),
                  {}, "Job keys are unique per role; use a new key for another target.");
        return begin_result(fcinfo, id, spi::get_oid(0, 2), spi::get_text(0, 3));
    };
    if (job_key)
        if (std::optional<Datum> r = existing())
            return *r;

    // Validate as the caller, before anything is created; some right first, then locks (the
    // job writes into the partition itself when one is given, as INSERT INTO it would).
    if (OidIsValid(partition)) {
        check_schema_usage(target);
        check_access_before_lock(partition, ACL_INSERT);
    } else {
        check_access_before_lock(target, ACL_INSERT);
    }
    Relation rel = pg_call([&] { return table_open(target, AccessShareLock); });
    const char kind = rel->rd_rel->relkind;
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
        raise(ERRCODE_WRONG_OBJECT_TYPE,
              format("cannot load into \"%s\": it is not a table", RelationGetRelationName(rel)));
    if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
        raise(ERRCODE_FEATURE_NOT_SUPPORTED,
              format("cannot load into temporary table \"%s\" with an async load job",
                     RelationGetRelationName(rel)),
              "Workers apply jobs in sessions of their own, which cannot see a session's "
              "temporary tables.",
              "Load it in this session with COPY ... WITH (ON_CONFLICT ...), or use an ordinary "
              "table as the target.");
    Relation dest = rel;
    if (OidIsValid(partition)) {
        const bool is_partition = pg_call([&] {
            return get_rel_relispartition(partition) &&
                   list_member_oid(get_partition_ancestors(partition), target);
        });
        if (!is_partition)
            raise(ERRCODE_WRONG_OBJECT_TYPE,
                  format("\"%s\" is not a partition of \"%s\"",
                         pg_call([&] { return get_rel_name(partition); }),
                         RelationGetRelationName(rel)));
        dest = pg_call([&] { return table_open(partition, AccessShareLock); });
    }
    MergeSpec spec;
    spec.target = dest;
    spec.mode = mode;
    spec.columns =
        only_columns.empty() ? insertable_columns(dest) : match_columns(only_columns, dest);
    for (size_t i = 0; i < spec.columns.size(); i++)
        for (size_t j = 0; j < i; j++)
            if (spec.columns[i] == spec.columns[j])
                raise(ERRCODE_DUPLICATE_COLUMN,
                      format("column \"%s\" is named more than once in columns",
                             NameStr(TupleDescAttr(RelationGetDescr(dest), spec.columns[i] - 1)
                                         ->attname)));
    spec.conflict_names = conflict_cols;
    spec.update_names = update_cols;
    spec.what = "async load";
    validate_merge(spec);
    if (overwrite != "none")
        pg_call([&] {
            AclResult r = pg_class_aclcheck(RelationGetRelid(dest), caller, ACL_DELETE);
            if (r != ACLCHECK_OK)
                aclcheck_error(r, OBJECT_TABLE, RelationGetRelationName(dest));
        });
    std::string columns = staging_columns(dest, spec.columns);
    if (ordered) {
        for (AttrNumber a : spec.columns) {
            const char* name = NameStr(TupleDescAttr(RelationGetDescr(dest), a - 1)->attname);
            if (strcmp(name, k_order_chunk) == 0 || strcmp(name, k_order_row) == 0)
                raise(ERRCODE_DUPLICATE_COLUMN,
                      format("cannot stage column \"%s\" in order: ordered staging adds a "
                             "column of that name",
                             name),
                      {},
                      "Leave the column out of columns, or stage unordered (ordered => false; "
                      "AsyncLoader "
                      "stages in order when async_load_parallelism is above 1).");
        }
        // current_setting() is stable and an identity's nextval is allowed: COPY keeps its
        // multi-row inserts.
        columns += format(
            ", %s bigint NOT NULL DEFAULT "
            "pg_catalog.current_setting('ingest.stage_chunk')::pg_catalog.int8, "
            "%s bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 1000)",
            k_order_chunk, k_order_row);
    }

    UserScope as_service(svc);
    // The job is this installation's (none before 0.5.0): a restore of it is told apart.
    const std::optional<std::string> installation = this_installation();
    const uint64 inserted = spi::exec(
        "INSERT INTO ingest.async_load_job (job_key, owner, target, conflict_mode, "
        "conflict_columns, update_columns, overwrite, overwrite_partition, exception_mode, "
        "reject_limit, keep_staging, columns" +
            std::string(installation ? ", installation" : "") +
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12" +
            (installation ? ", " + *installation : std::string()) +
            ") ON CONFLICT (owner, job_key) DO NOTHING RETURNING id",
        {spi::text_arg(job_key), spi::oid_arg(caller), spi::oid_arg(target),
         spi::text_arg(std::string(conflict_mode_name(mode))), text_array_arg(conflict_cols),
         text_array_arg(update_cols), spi::text_arg(overwrite),
         OidIsValid(partition) ? spi::oid_arg(partition) : spi::Arg{OIDOID, Datum(0), true},
         spi::text_arg(exception_mode),
         reject_limit ? spi::int8_arg(*reject_limit) : spi::Arg{INT8OID, Datum(0), true},
         spi::bool_arg(keep_staging), text_array_arg(only_columns)});
    if (inserted == 0) {
        // A concurrent begin with the same key won; its job is ours.
        if (std::optional<Datum> r = existing())
            return *r;
        raise(ERRCODE_INTERNAL_ERROR, "async load job key conflict could not be resolved");
    }
    const int64_t id = spi::get_int64(0, 1);
    const std::string staging = staging_name(id);
    {
        // Created as the extension's owner: the caller's default_tablespace would put it (and
        // the rows the caller stages) in a tablespace the caller may not create in. The
        // database's default instead.
        GucScope database_default(nullptr);
        pg_call([] {
            (void)set_config_option("default_tablespace", "", PGC_USERSET, PGC_S_SESSION,
                                    GUC_ACTION_SAVE, true, 0, false);
        });
        spi::exec("CREATE TABLE " + staging + " (" + columns + ")");
    }
    const Oid staging_oid = pg_call([&] {
        return get_relname_relid(psprintf("job_%lld", (long long)id),
                                 get_namespace_oid("ingest_staging", false));
    });
    // Default privileges (ALTER DEFAULT PRIVILEGES of the extension owner, or in the staging
    // schema) may have granted the new table, and the identity sequence of ordered staging, to
    // other roles: only the job's owner may use them, with exactly the rights granted here.
    revoke_from_others(staging_oid, "TABLE", staging, "ALL");
    // Nobody may build on the table's row type (a column or function of that type): the
    // dependency would keep the table from being dropped when its job ends.
    spi::exec("REVOKE USAGE ON TYPE " + staging + " FROM PUBLIC");
    List* sequences = pg_call([&] { return getOwnedSequences(staging_oid); });
    for (int i = 0; i < list_length(sequences); i++) {
        const Oid seq = list_nth_oid(sequences, i);
        const std::string seq_name = pg_call([&] {
            return quote_qualified_identifier(get_namespace_name(get_rel_namespace(seq)),
                                              get_rel_name(seq));
        });
        revoke_from_others(seq, "SEQUENCE", seq_name, "ALL");
    }
    spi::exec("GRANT SELECT, INSERT, DELETE, TRUNCATE ON " + staging + " TO " +
              quoted_role(caller));
    spi::exec("UPDATE ingest.async_load_job SET staging = $2 WHERE id = $1",
              {spi::int8_arg(id), spi::oid_arg(staging_oid)});
    notify_state(id, "INIT");
    pg_call([&] {
        if (dest != rel)
            table_close(dest, NoLock);
        table_close(rel, NoLock);
    });
    return begin_result(fcinfo, id, staging_oid, "INIT");
}

PGI_FUNCTION(ingest_submit_async_load) {
    const int64_t id = PG_GETARG_INT64(0);
    const Oid caller = GetUserId();
    const Oid svc = service_user();
    spi::Connection spi_conn;
    UserScope as_service(svc);
    const Job job = visible_job(id, caller, true);
    if (job.state != "INIT")
        wrong_state(job, "submit", "Only a job in INIT can be submitted.");
    if (!OidIsValid(job.staging))
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
              format("async load job %lld has no staging table", (long long)id));
    const std::string staging = staging_name(id);
    // Waits for transactions still writing to staging, then closes it to the owner: rows
    // added after submit could never be applied. A superuser owner passes every privilege
    // check, so a constraint no row passes closes it to every writer (NOT VALID: the staged
    // rows are not checked).
    spi::exec("LOCK TABLE " + staging + " IN SHARE MODE");
    spi::exec("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON " + staging + " FROM " +
              quoted_role(job.owner));
    spi::exec("ALTER TABLE " + staging +
              " ADD CONSTRAINT no_rows_after_submit CHECK (false) NOT VALID");
    // Nobody else may write or read it either: a grant made since begin, or one that default
    // privileges made on a staging table created before begin removed them.
    revoke_from_others(job.staging, "TABLE", staging, "ALL", job.owner);
    spi::exec("SELECT count(*), pg_catalog.pg_total_relation_size($1) FROM " + staging,
              {spi::oid_arg(job.staging)});
    const int64_t rows = spi::get_int64(0, 1);
    const int64_t bytes = spi::get_int64(0, 2);
    // A job restored from a dump in INIT is queued here: it becomes this installation's.
    spi::exec(
        "UPDATE ingest.async_load_job SET state = 'READY', submitted_at = "
        "pg_catalog.clock_timestamp(), "
        "queue_position = pg_catalog.nextval('ingest.async_load_queue_seq'), rows_staged = $2, "
        "bytes_staged = $3" +
            adopt_clause() + " WHERE id = $1",
        {spi::int8_arg(id), spi::int8_arg(rows), spi::int8_arg(bytes)});
    notify_state(id, "READY");
    wake_launcher_at_commit();
    return return_state(fcinfo, "READY");
}

PGI_FUNCTION(ingest_retry_async_load) {
    const int64_t id = PG_GETARG_INT64(0);
    const Oid caller = GetUserId();
    const Oid svc = service_user();
    spi::Connection spi_conn;
    UserScope as_service(svc);
    const Job job = visible_job(id, caller, true);
    if (job.state != "FAIL")
        wrong_state(job, "retry", "Only a job in FAIL can be retried.");
    // Queued again behind the jobs submitted since it failed (a job restored from a dump
    // becomes this installation's). Its runs are counted afresh (attempts), so that a job
    // that failed after its last requeue for a deadlock gets them all again.
    spi::exec(
        "UPDATE ingest.async_load_job SET state = 'READY', error_sqlstate = NULL, "
        "error_message = NULL, finished_at = NULL, worker_pid = NULL, rows_inserted = 0, "
        "rows_updated = 0, rows_skipped = 0, rows_rejected = 0, attempts = 0, "
        "queue_position = pg_catalog.nextval('ingest.async_load_queue_seq')" +
            adopt_clause() + " WHERE id = $1",
        {spi::int8_arg(id)});
    spi::exec("DELETE FROM ingest.async_load_reject WHERE job_id = $1", {spi::int8_arg(id)});
    notify_state(id, "READY");
    wake_launcher_at_commit();
    return return_state(fcinfo, "READY");
}

PGI_FUNCTION(ingest_cancel_async_load) {
    const int64_t id = PG_GETARG_INT64(0);
    const Oid caller = GetUserId();
    const Oid svc = service_user();
    spi::Connection spi_conn;
    UserScope as_service(svc);
    Job job = visible_job(id, caller);
    for (int round = 0; round < 3; round++) {
        if (is_terminal(job.state))
            raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                  format("cannot cancel async load job %lld: it has already ended (%s)",
                         (long long)id, job.state.c_str()));
        if (job.state == "INIT" || job.state == "READY") {
            // No row lock is held while a worker may be loading it (the worker records its
            // own outcome); the state test makes this race-free against a claim.
            if (cancel_now(id, "state IN ('INIT', 'READY')"))
                return return_state(fcinfo, "CANCEL");
        } else if (job.state == "LOADING") {
            if (!request_cancel(id)) {
                // No live worker runs it (its worker died; recovery has not run yet).
                if (cancel_now(id, "state = 'LOADING'"))
                    return return_state(fcinfo, "CANCEL");
            } else {
                if (IsolationUsesXactSnapshot())
                    return return_state(fcinfo, "LOADING");  // cannot watch it from here
                // The worker rolls the apply back and records CANCEL.
                const TimestampTz deadline = GetCurrentTimestamp() + 60 * USECS_PER_SEC;
                while (job.state == "LOADING" && GetCurrentTimestamp() < deadline) {
                    pg_call([] {
                        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                                        50, PG_WAIT_EXTENSION);
                        ResetLatch(MyLatch);
                        CHECK_FOR_INTERRUPTS();
                    });
                    job = visible_job(id, caller);
                }
                if (job.state == "FINISH")
                    raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                          format("cannot cancel async load job %lld: it finished first",
                                 (long long)id));
                return return_state(fcinfo, job.state);
            }
        }
        job = visible_job(id, caller);
    }
    return return_state(fcinfo, job.state);
}

PGI_FUNCTION(ingest_wait_async_load) {
    if (PG_ARGISNULL(0))
        raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, "id must not be NULL");
    const int64_t id = PG_GETARG_INT64(0);
    std::optional<int64_t> timeout_us;
    if (!PG_ARGISNULL(1)) {
        const Interval* iv = PG_GETARG_INTERVAL_P(1);
        // In long double: '300000 years' overflows int64 microseconds (and turned negative);
        // anything past a century is as good as no bound.
        const long double whole = static_cast<long double>(iv->time) +
                                  (static_cast<long double>(iv->day) +
                                   static_cast<long double>(iv->month) * DAYS_PER_MONTH) *
                                      USECS_PER_DAY;
        if (whole < 0)
            raise(ERRCODE_INVALID_PARAMETER_VALUE, "timeout must not be negative");
        constexpr int64_t k_century_us = int64_t(100) * 366 * USECS_PER_DAY;
        const int64_t us = whole > k_century_us ? k_century_us : static_cast<int64_t>(whole);
        timeout_us = us;
    }
    if (IsolationUsesXactSnapshot())
        raise(ERRCODE_INVALID_TRANSACTION_STATE,
              "ingest.wait_async_load() cannot wait in a REPEATABLE READ or SERIALIZABLE "
              "transaction",
              "The job's state could never change in this transaction's snapshot.",
              "Call it outside a transaction block or in a READ COMMITTED transaction.");
    const Oid caller = GetUserId();
    const Oid svc = service_user();
    // The worker that ends the job sets our latch; polling remains as a fallback.
    register_waiter(id);
    struct Unregister {
        ~Unregister() { unregister_waiter(); }
    } unregister;
    const TimestampTz start = GetCurrentTimestamp();
    // The deadlock detector cannot see this wait: about once a second, a LOADING job's worker
    // is checked for waiting on a lock that this transaction holds (it read the staging table,
    // which the worker drops, or locked rows of the target). Then neither could ever go on, and
    // the wait fails as a deadlock would.
    TimestampTz last_check = 0;
    const MemoryContext check_cxt = pg_call([] {
        return AllocSetContextCreate(CurrentMemoryContext, "pg_ingest wait check",
                                     ALLOCSET_SMALL_SIZES);
    });
    for (;;) {
        // One SPI connection per poll: what a poll's statements allocate is freed with it, so
        // a long wait does not grow the backend.
        Job job;
        {
            spi::Connection spi_conn;
            UserScope as_service(svc);
            job = visible_job(id, caller);
            if (job.state == "INIT" || job.state == "READY") {
                // A new snapshot: the job may be gone since visible_job() read it (removed
                // by retention or an administrator); then the next poll says so.
                const bool found = spi::exec("SELECT xmin FROM ingest.async_load_job WHERE id = $1",
                                             {spi::int8_arg(id)}) == 1;
                const bool own =
                    found && pg_call([] {
                        bool isnull;
                        Datum x =
                            SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
                        return !isnull &&
                               TransactionIdIsCurrentTransactionId(DatumGetTransactionId(x));
                    });
                if (own)
                    raise(ERRCODE_INVALID_TRANSACTION_STATE,
                          format("async load job %lld was changed by this transaction, which has "
                                 "not committed",
                                 (long long)id),
                          "Workers cannot see the job until the transaction commits.",
                          "Commit the transaction that submitted the job before waiting for it.");
            }
        }
        if (is_terminal(job.state))
            return return_state(fcinfo, job.state);
        const TimestampTz now = GetCurrentTimestamp();
        if (job.state == "LOADING" && now - last_check >= USECS_PER_SEC) {
            last_check = now;
            const int worker = job_worker_pid(id);
            if (worker != 0 && blocked_by_this_backend(worker, check_cxt))
                raise(ERRCODE_T_R_DEADLOCK_DETECTED,
                      format("async load job %lld cannot finish while this transaction waits for "
                             "it",
                             (long long)id),
                      format("The worker applying async load job %lld waits for a lock that "
                             "this transaction holds.",
                             (long long)id),
                      "Commit or roll back the transaction (which read the job's staging table "
                      "or wrote its target) before waiting for the job.");
        }
        // A READY job queued behind a LOADING job on its target cannot start before that one
        // ends: if that job's worker waits for this backend, the wait cannot end either.
        if (job.state == "READY" && now - last_check >= USECS_PER_SEC) {
            last_check = now;
            std::vector<int64_t> ahead;
            {
                spi::Connection spi_conn;
                UserScope as_service(svc);
                const uint64 n = spi::exec(
                    "SELECT a.id FROM ingest.async_load_job a JOIN ingest.async_load_job j ON "
                    "a.target = j.target AND a.queue_position < j.queue_position WHERE j.id = $1 "
                    "AND a.state = 'LOADING'",
                    {spi::int8_arg(id)});
                for (uint64 i = 0; i < n; i++)
                    ahead.push_back(spi::get_int64(i, 1));
            }
            for (const int64_t other : ahead) {
                const int worker = job_worker_pid(other);
                if (worker != 0 && blocked_by_this_backend(worker, check_cxt))
                    raise(ERRCODE_T_R_DEADLOCK_DETECTED,
                          format("async load job %lld cannot start while this session waits for "
                                 "it",
                                 (long long)id),
                          format("It is queued behind async load job %lld on the same target, "
                                 "whose worker waits for a lock that this session holds.",
                                 (long long)other),
                          "Release the lock (commit or roll back the transaction that holds it, "
                          "or unlock an advisory lock) before waiting for the job.");
            }
        }
        const int64_t waited = now - start;
        if (timeout_us && waited >= *timeout_us)
            return return_state(fcinfo, job.state);
        long wait_ms = 100;
        if (timeout_us)
            wait_ms = std::min<long>(wait_ms, (*timeout_us - waited) / 1000 + 1);
        pg_call([&] {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms,
                            PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        });
    }
}

PGI_FUNCTION(ingest_job_rows_applied) {
    const int64_t id = PG_GETARG_INT64(0);
    std::optional<int64_t> rows = rows_applied(id);
    if (!rows)
        PG_RETURN_NULL();
    // Progress is shown only to those who may see the job.
    const Oid caller = GetUserId();
    const Oid svc = service_user();
    spi::Connection spi_conn;
    UserScope as_service(svc);
    std::optional<Job> job = load_job(id);
    if (!job || !may_control(caller, job->owner))
        PG_RETURN_NULL();
    PG_RETURN_INT64(*rows);
}

// Adopts the caller's jobs restored from a dump (every one for ingest_admin) into this
// installation: a READY job is queued in its old position, a LOADING one (dumped while it was
// applied, which rolled back) is READY again like an orphan, the others are this
// installation's again (retention). Returns how many were adopted.
PGI_FUNCTION(ingest_resume_restored_jobs) {
    const Oid caller = GetUserId();
    const Oid svc = service_user();
    spi::Connection spi_conn;
    UserScope as_service(svc);
    const std::optional<std::string> installation = this_installation();
    if (!installation)
        raise(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
              "jobs restored from a dump need pg_ingest 0.5.0 or later", {},
              "Run ALTER EXTENSION pg_ingest UPDATE.");
    // NULL: a job dumped before 0.5.0, restored into this installation.
    const std::string restored = "NOT coalesce(" + of_this_installation("j") + ", false)";
    const uint64 n = spi::exec("SELECT j.id, j.owner::oid FROM ingest.async_load_job j WHERE " +
                               restored + " ORDER BY j.id");
    std::vector<int64_t> ids;
    for (uint64 i = 0; i < n; i++)
        if (may_control(caller, spi::get_oid(i, 2)))
            ids.push_back(spi::get_int64(i, 1));
    int64_t adopted = 0;
    bool queued = false;
    for (int64_t id : ids) {
        // Locked and read again: a concurrent resume or cancel may have taken it meanwhile.
        if (spi::exec("SELECT j.state::text FROM ingest.async_load_job j WHERE j.id = $1 AND " +
                          restored + " FOR UPDATE",
                      {spi::int8_arg(id)}) == 0)
            continue;
        const std::string state = spi::get_text(0, 1);
        const bool loading = state == "LOADING";
        // A LOADING job that a live worker of this database runs (possible only once the
        // installation id was replaced by hand) is left to it: made READY it would run twice.
        if (loading) {
            const std::vector<int64_t> running = running_job_ids();
            if (std::find(running.begin(), running.end(), id) != running.end())
                continue;
        }
        spi::exec("UPDATE ingest.async_load_job SET " +
                      std::string(loading ? "state = 'READY', worker_pid = NULL, " : "") +
                      "installation = " + *installation + " WHERE id = $1",
                  {spi::int8_arg(id)});
        if (loading)
            notify_state(id, "READY");
        queued = queued || loading || state == "READY";
        adopted++;
    }
    if (queued)
        wake_launcher_at_commit();  // also makes the database known to the launcher
    PG_RETURN_INT64(adopted);
}

// From the extension scripts: the launcher learns at commit that this database has pg_ingest
// and starts a worker there (which reports jobs restored from a dump, applies retention and
// runs this installation's jobs), instead of waiting for a first submit.
PGI_FUNCTION(ingest_watch_database) {
    wake_launcher_at_commit();
    PG_RETURN_VOID();
}
