// The writer's SQL: opening (the schema, the columns, the key, which statement the modes call
// for), the statements built once from it, and applying a batch's deletes and writes with them
// (the lock of its keys first).
#include "writer_impl.hpp"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/copy.hpp>

#include "exec.hpp"

namespace pg_ingest {

namespace {

using detail::BinaryParams;

std::atomic<std::uint64_t> g_writer_ids{0};

std::int32_t get32(const char* p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return static_cast<std::int32_t>((std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) |
                                     (std::uint32_t{u[2]} << 8) | std::uint32_t{u[3]});
}

// Adds the encoded fields (int32 length + bytes each) of `fields` as binary parameters.
void add_params(BinaryParams& params, std::string_view fields,
                const std::vector<std::uint32_t>& types) {
    std::size_t at = 0;
    for (const std::uint32_t type : types) {
        const std::int32_t length = get32(fields.data() + at);
        at += 4;
        if (length < 0) {
            params.add(type, nullptr, 0);
        } else {
            params.add(type, fields.data() + at, length);
            at += static_cast<std::size_t>(length);
        }
    }
}

// "$1, $2, ..., $n" grouped in parentheses per row.
std::string placeholders(std::size_t rows, std::size_t columns, std::size_t first = 1) {
    std::string text;
    std::size_t n = first;
    for (std::size_t r = 0; r < rows; ++r) {
        text += r == 0 ? "(" : ", (";
        for (std::size_t c = 0; c < columns; ++c) {
            text += (c == 0 ? "$" : ", $") + std::to_string(n++);
        }
        text += ")";
    }
    return text;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        out += (i == 0 ? "" : separator) + items[i];
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Opening

void Writer::Impl::open(std::string_view table, std::vector<std::string> requested) {
    options.validate();
    const auto deadline = Clock::now() + options.connect_timeout;
    auto lease = pool->acquire(deadline);
    Connection& connection = *lease;
    // The catalog reads are bounded as a flush attempt is; the pool gets the lease back without.
    detail::DeadlineScope bound(connection, Clock::now() + options.flush_timeout);
    schema = TableSchema::load(connection, table, options.target_schema, options.case_sensitive);
    extension =
        connection.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_ingest'")
            .rows() == 1;

    const auto& table_columns = schema.columns();
    std::vector<std::size_t> chosen;
    if (requested.empty()) {
        for (std::size_t i = 0; i < table_columns.size(); ++i) {
            if (!table_columns[i].generated && !table_columns[i].identity_always) {
                chosen.push_back(i);
            }
        }
    } else {
        for (const auto& name : requested) {
            const auto found = schema.find_column(name, options.case_sensitive);
            if (!found) {
                throw usage_error(
                    "column \"" + name + "\" of table " + table_label() + " does not exist",
                    "42703");
            }
            if (std::find(chosen.begin(), chosen.end(), *found) != chosen.end()) {
                throw usage_error("column \"" + name + "\" is listed twice", "42701");
            }
            chosen.push_back(*found);
        }
    }
    for (const std::size_t i : chosen) {
        const ColumnInfo& info = table_columns[i];
        if (info.generated) {
            throw usage_error("column \"" + info.name + "\" is generated and cannot be written",
                              "0A000");
        }
        if (!info.type) {
            throw usage_error("column \"" + info.name + "\" has type " + info.type_name +
                                  ", which the client cannot encode",
                              "0A000");
        }
        column_names.push_back(info.name);
        types.push_back(*info.type);
        type_oids.push_back(info.type->oid);
        not_null.push_back(info.not_null);
        identity_always.push_back(info.identity_always);
    }
    // Rows of no value cannot be written: COPY and INSERT would have no column list, and the
    // statements' parameters are counted per column.
    if (column_names.empty()) {
        throw usage_error("table " + table_label() +
                              " has no column the writer can write (every column is generated "
                              "or an identity GENERATED ALWAYS)",
                          "0A000");
    }

    // The key.
    std::vector<std::string> key;
    if (!options.conflict_columns.empty()) {
        for (const auto& name : options.conflict_columns) {
            const auto found = schema.find_column(name, options.case_sensitive);
            if (!found) {
                throw usage_error("conflict column \"" + name + "\" does not exist", "42703");
            }
            key.push_back(table_columns[*found].name);
        }
    } else if (!schema.primary_key().empty()) {
        key = schema.primary_key();
    } else if (schema.unique_keys().size() == 1) {
        key = schema.unique_keys().front();
    } else if (schema.unique_keys().size() > 1 && options.conflict_mode != ConflictMode::strict) {
        throw usage_error("table " + table_label() +
                              " has several unique keys and no primary key: set conflictcolumns",
                          "42P10");
    }
    // Strict inserts need no key of their own: the server's unique index refuses duplicates. So
    // a key the caller does not write (a serial id, say) is not an error there: the table is
    // written as keyless (no erase(), no in-batch duplicate check).
    if (options.conflict_mode == ConflictMode::strict && options.conflict_columns.empty() &&
        std::any_of(key.begin(), key.end(), [&](const std::string& name) {
            return std::find(column_names.begin(), column_names.end(), name) == column_names.end();
        })) {
        key.clear();
    }
    keyed = !key.empty();
    // ON CONFLICT (key) needs a unique index on exactly these columns: the schema's keys are
    // such indexes (immediate, not partial, no expressions); other conflictcolumns may not be.
    const auto same_set = [&](std::vector<std::string> a) {
        std::vector<std::string> b = key;
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        return a == b;
    };
    key_is_arbiter =
        keyed && (same_set(schema.primary_key()) ||
                  std::any_of(schema.unique_keys().begin(), schema.unique_keys().end(), same_set));
    insert_may_use_on_conflict = options.write_mode == WriteMode::insert && key_is_arbiter &&
                                 (options.conflict_mode == ConflictMode::upsert ||
                                  options.conflict_mode == ConflictMode::ignore);
    keep_values = options.exception_mode == ExceptionMode::ignore;
    for (const auto& name : key) {
        const auto at = std::find(column_names.begin(), column_names.end(), name);
        if (at == column_names.end()) {
            throw usage_error("key column \"" + name + "\" is not among the written columns",
                              "42P10");
        }
        key_positions.push_back(static_cast<std::size_t>(at - column_names.begin()));
        key_names.push_back(name);
        key_oids.push_back(types[key_positions.back()].oid);
        if (!key_bytes_supported(types[key_positions.back()])) {
            // Keys are deduplicated on the client by their bytes; two values the server calls
            // equal but whose bytes differ would reach one statement and fail it.
            throw usage_error("key column \"" + name + "\" has type " +
                                  types[key_positions.back()].name +
                                  ", whose equality the writer cannot reproduce on the client; "
                                  "use another key (conflictcolumns)",
                              "0A000");
        }
    }
    if (!keyed && options.conflict_mode == ConflictMode::update) {
        throw usage_error("conflictmode update needs a key: table " + table_label() +
                              " has no primary or unique key (set conflictcolumns)",
                          "42P10");
    }
    if (!options.update_columns.empty() && options.conflict_mode == ConflictMode::upsert) {
        partial_update.assign(column_names.size(), false);
    }
    for (const auto& name : options.update_columns) {
        const auto found = schema.find_column(name, options.case_sensitive);
        if (!found || std::find(column_names.begin(), column_names.end(),
                                table_columns[*found].name) == column_names.end()) {
            throw usage_error("update column \"" + name + "\" is not among the written columns",
                              "42703");
        }
        if (std::find(key_names.begin(), key_names.end(), table_columns[*found].name) !=
            key_names.end()) {
            throw usage_error("update column \"" + name + "\" is a key column", "42P10");
        }
        if (table_columns[*found].identity_always) {
            throw usage_error("update column \"" + name +
                                  "\" is an identity column GENERATED ALWAYS, which an existing "
                                  "row keeps",
                              "428C9");
        }
        if (!partial_update.empty()) {
            const auto at =
                std::find(column_names.begin(), column_names.end(), table_columns[*found].name);
            partial_update[static_cast<std::size_t>(at - column_names.begin())] = true;
        }
    }

    // An update needs something to update: refused here, as COPY ON CONFLICT refuses it
    // (42P10), whatever the write mode, rather than a batch that changes nothing (or fails on
    // the server at the first flush).
    if (keyed && options.conflict_mode == ConflictMode::update && options.update_columns.empty()) {
        bool updatable = false;
        for (std::size_t i = 0; i < column_names.size(); ++i) {
            updatable = updatable || (std::find(key_names.begin(), key_names.end(),
                                                column_names[i]) == key_names.end() &&
                                      !identity_always[i]);
        }
        if (!updatable) {
            throw usage_error(
                "conflictmode update needs a written column besides the key "
                "columns (" +
                    join(key_names, ", ") + ") to update",
                "42P10");
        }
    }

    switch (options.write_mode) {
        case WriteMode::copy:
            // Strict is an append: a key that exists fails with the unique violation, which
            // plain binary COPY gives without the merge engine's sort (repeats inside a batch
            // are refused at write()).
            statement = !keyed || options.conflict_mode == ConflictMode::strict
                            ? WriteStatement::copy_plain
                        : extension ? WriteStatement::copy_extension
                                    : WriteStatement::copy_stage;
            break;
        case WriteMode::insert:
            statement = keyed && options.conflict_mode == ConflictMode::update
                            ? WriteStatement::update_values
                            : WriteStatement::insert_plain;
            break;
        case WriteMode::upsert:
            if (!keyed || options.conflict_mode == ConflictMode::strict) {
                statement = WriteStatement::insert_plain;
            } else if (options.conflict_mode == ConflictMode::update) {
                statement = WriteStatement::update_values;
            } else {
                statement = WriteStatement::insert_conflict;
            }
            break;
    }
    // ON CONFLICT (key), and COPY ON CONFLICT, need a unique index on exactly the key. Without
    // one every flush fails with 42P10, which is no row error: the batch would be kept and sent
    // again at every flush, forever. UPDATE ... FROM (conflictmode update but through the
    // extension) and plain INSERT need none (writemode insert falls back to ON CONFLICT only
    // with an arbiter: insert_may_use_on_conflict).
    const bool uses_on_conflict = statement == WriteStatement::copy_extension ||
                                  statement == WriteStatement::insert_conflict ||
                                  (statement == WriteStatement::copy_stage &&
                                   options.conflict_mode != ConflictMode::update) ||
                                  insert_may_use_on_conflict;
    if (keyed && !key_is_arbiter && uses_on_conflict) {
        throw Error("conflictcolumns (" + join(key_names, ", ") + ") of table " + table_label() +
                        " match no unique index, which writemode " + to_string(options.write_mode) +
                        " with conflictmode " + to_string(options.conflict_mode) +
                        " needs to detect conflicts",
                    "42P10", "",
                    "Name the columns of the primary key or of a unique index (not partial, not "
                    "deferrable, on plain columns), or create one; conflictmode update in "
                    "writemode upsert or insert needs none.",
                    true);
    }
    build_sql(connection);
    log(LogLevel::info,
        "writer opened on " + table_label() + ": " + std::to_string(column_names.size()) +
            " columns, key (" + join(key_names, ", ") + "), writemode " +
            to_string(options.write_mode) + ", conflictmode " + to_string(options.conflict_mode) +
            (extension ? ", COPY ON CONFLICT extension present" : ", extension absent"));
}

void Writer::Impl::build_sql(const Connection& c) {
    qualified = schema.qualified_name(c);
    std::vector<std::string> quoted;
    for (const auto& name : column_names) {
        quoted.push_back(c.quote_identifier(name));
    }
    column_list = join(quoted, ", ");
    std::vector<std::string> quoted_keys;
    for (const auto& name : key_names) {
        quoted_keys.push_back(c.quote_identifier(name));
    }
    const std::string key_list = join(quoted_keys, ", ");
    std::vector<std::string> update;
    if (!options.update_columns.empty()) {
        for (const auto& name : options.update_columns) {
            update.push_back(c.quote_identifier(
                schema.columns()[*schema.find_column(name, options.case_sensitive)].name));
        }
    } else {
        for (std::size_t i = 0; i < column_names.size(); ++i) {
            // An identity column GENERATED ALWAYS keeps its value, as UPDATE requires.
            if (std::find(key_positions.begin(), key_positions.end(), i) == key_positions.end() &&
                !identity_always[i]) {
                update.push_back(quoted[i]);
            }
        }
    }
    std::vector<std::string> excluded;
    std::vector<std::string> from_v;
    std::vector<std::string> from_s;
    for (const auto& u : update) {
        excluded.push_back(u + " = EXCLUDED." + u);
        from_v.push_back(u + " = v." + u);
        from_s.push_back(u + " = s." + u);
    }
    std::vector<std::string> join_v;
    std::vector<std::string> join_s;
    std::vector<std::string> t_keys;
    for (const auto& k : quoted_keys) {
        join_v.push_back("t." + k + " = v." + k);
        join_s.push_back("t." + k + " = s." + k);
        t_keys.push_back("t." + k);
    }

    const std::string copy_prefix =
        "COPY " + qualified + " (" + column_list + ") FROM STDIN WITH (FORMAT binary";
    if (statement == WriteStatement::copy_extension) {
        copy_sql = copy_prefix + ", ON_CONFLICT " +
                   c.quote_literal(to_string(options.conflict_mode)) + ", CONFLICT_COLUMNS " +
                   c.quote_literal(key_list);
        if (!options.update_columns.empty()) {
            copy_sql += ", UPDATE_COLUMNS " + c.quote_literal(join(update, ", "));
        }
        copy_sql += ")";
    } else {
        copy_sql = copy_prefix + ")";
    }

    stage_name = "pg_ingest_stage_" + std::to_string(g_writer_ids.fetch_add(1) + 1);
    const std::string stage = "pg_temp." + c.quote_identifier(stage_name);
    stage_create_sql = "CREATE TEMP TABLE " + c.quote_identifier(stage_name) +
                       " ON COMMIT DROP AS SELECT " + column_list + " FROM " + qualified +
                       " WITH NO DATA";
    stage_copy_sql = "COPY " + stage + " (" + column_list + ") FROM STDIN WITH (FORMAT binary)";
    // Given values go into GENERATED ALWAYS identity columns, as with COPY.
    const std::string overriding =
        std::find(identity_always.begin(), identity_always.end(), true) != identity_always.end()
            ? " OVERRIDING SYSTEM VALUE"
            : "";
    const std::string insert_select = "INSERT INTO " + qualified + " (" + column_list + ")" +
                                      overriding + " SELECT " + column_list + " FROM " + stage;
    switch (options.conflict_mode) {
        case ConflictMode::upsert:
            stage_apply_sql =
                insert_select + " ON CONFLICT (" + key_list + ") " +
                (update.empty() ? "DO NOTHING" : "DO UPDATE SET " + join(excluded, ", "));
            break;
        case ConflictMode::ignore:
            stage_apply_sql = insert_select + " ON CONFLICT (" + key_list + ") DO NOTHING";
            break;
        case ConflictMode::strict:
            stage_apply_sql = insert_select;
            break;
        case ConflictMode::update:
            // Lock the targets in key order first so concurrent writers cannot deadlock.
            stage_lock_sql = "SELECT 1 FROM " + qualified + " t WHERE (" + join(t_keys, ", ") +
                             ") IN (SELECT " + key_list + " FROM " + stage + ") ORDER BY " +
                             join(t_keys, ", ") + " FOR UPDATE OF t";
            stage_apply_sql = update.empty()
                                  ? std::string("SELECT 1")
                                  : "UPDATE " + qualified + " t SET " + join(from_s, ", ") +
                                        " FROM " + stage + " s WHERE " + join(join_s, " AND ");
            break;
    }
    insert_prefix = "INSERT INTO " + qualified + " (" + column_list + ")" + overriding + " VALUES ";
    if (options.conflict_mode == ConflictMode::ignore || update.empty()) {
        conflict_suffix = " ON CONFLICT (" + key_list + ") DO NOTHING";
    } else {
        conflict_suffix = " ON CONFLICT (" + key_list + ") DO UPDATE SET " + join(excluded, ", ");
    }
    if (!update.empty()) {
        update_prefix = "UPDATE " + qualified + " t SET " + join(from_v, ", ") + " FROM (VALUES ";
        update_suffix = ") AS v(" + column_list + ") WHERE " + join(join_v, " AND ");
    }
    delete_prefix = "DELETE FROM " + qualified + " WHERE (" + key_list + ") IN (";
    if (!quoted_keys.empty()) {
        std::vector<std::string> v_keys;
        std::vector<std::string> match;
        for (std::size_t k = 0; k < quoted_keys.size(); ++k) {
            v_keys.push_back("v" + std::to_string(k));
            match.push_back("t." + quoted_keys[k] + " = v.v" + std::to_string(k));
        }
        exists_prefix = "SELECT v.pos FROM (VALUES ";
        exists_suffix = ") AS v(" + join(v_keys, ", ") + ", pos) WHERE EXISTS (SELECT 1 FROM " +
                        qualified + " t WHERE " + join(match, " AND ") + ")";
    }
    // The lock takes rows in the order this writer's statements take them when no delete comes
    // first: the server's key order where the server sorts (COPY ON CONFLICT, the staged
    // INSERT ... SELECT), the batch's own order for INSERT ... ON CONFLICT ... VALUES.
    const bool updates = !update.empty() && (options.conflict_mode == ConflictMode::upsert ||
                                             options.conflict_mode == ConflictMode::update);
    const bool sorted_by_server =
        statement == WriteStatement::copy_extension || statement == WriteStatement::copy_stage;
    if (updates && (sorted_by_server || statement == WriteStatement::insert_conflict)) {
        std::vector<std::string> v_keys;
        std::vector<std::string> join_lock;
        for (std::size_t k = 0; k < quoted_keys.size(); ++k) {
            v_keys.push_back("v" + std::to_string(k));
            join_lock.push_back("t." + quoted_keys[k] + " = v.v" + std::to_string(k));
        }
        lock_prefix = "SELECT 1 FROM " + qualified + " t JOIN (VALUES ";
        lock_suffix = ") AS v(" + join(v_keys, ", ") + ", pos) ON " + join(join_lock, " AND ") +
                      " ORDER BY " + (sorted_by_server ? join(t_keys, ", ") : "v.pos") +
                      " FOR NO KEY UPDATE OF t";
    }
}

// ---------------------------------------------------------------------------------------------
// Applying statements

void Writer::Impl::apply_deletes(Connection& connection, const std::vector<const Slot*>& slots,
                                 std::size_t begin, std::size_t end, Clock::time_point deadline) {
    const std::size_t per_statement = std::max<std::size_t>(
        1, std::min<std::size_t>(1000, 65535 / std::max<std::size_t>(1, key_oids.size())));
    for (std::size_t at = begin; at < end; at += per_statement) {
        const std::size_t count = std::min(per_statement, end - at);
        BinaryParams params;
        for (std::size_t i = at; i < at + count; ++i) {
            add_params(params, slots[i]->key_fields, key_oids);
        }
        detail::exec_until(connection, delete_prefix + placeholders(count, key_oids.size()) + ")",
                           &params, deadline);
    }
}

// A batch's deletes and its writes are two statements, each in key order: alone, a writer could
// delete key 5, then wait in its writes for key 3, which another writer deleted before waiting
// for key 5 in its own writes (a deadlock, seen often with four writers mixing erase() and
// write()). So a batch with both first locks the existing rows of all its keys (FOR NO KEY
// UPDATE, as its updates would; a DELETE then upgrades its own lock) in the order its writes
// would take them without deletes (see build_sql): every writer of one mode then takes row locks
// in one order, and waits after that mostly for new keys, which every writer inserts in the same
// order too. A batch sent again in the order its operations were issued (its deletes-first order
// failed with a row error, see send) is more statements, each in key order; it takes the same
// lock first, so its existing rows are locked in that one order too, but its new keys go in
// statement by statement, not in one order with other writers'. A row that another transaction
// inserts and commits after the lock, or such a new key, can still close a cycle (retried as any
// 40P01). One statement per 65535 parameters: a batch of more keys is locked in pieces, in the
// batch's order. Not when isolating rows (exceptionmode=ignore, or strict finding its bad row):
// a row error there must come from the statement that isolates it.
void Writer::Impl::lock_keys(Connection& connection, const std::vector<const Slot*>& deletes,
                             const std::vector<const Slot*>& writes, Clock::time_point deadline) {
    if (deletes.empty() || writes.empty() || !keyed || lock_prefix.empty()) {
        return;
    }
    // Both lists are in the batch's key order; a key deleted and then written is in both.
    std::vector<const Slot*> slots;
    slots.reserve(deletes.size() + writes.size());
    std::merge(deletes.begin(), deletes.end(), writes.begin(), writes.end(),
               std::back_inserter(slots),
               [](const Slot* a, const Slot* b) { return a->key < b->key; });
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    // One index probe per key: for a few thousand keys the planner would rather hash the list
    // and scan the whole table (150 ms for 5000 keys of a 1M-row table, against 23 ms), a cost
    // that grows with the table. Only for the lock: the batch's own statements plan as before.
    static const std::string k_probe =
        "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
        "SET LOCAL enable_seqscan = off";
    static const std::string k_unprobe =
        "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT; "
        "SET LOCAL enable_seqscan TO DEFAULT";
    detail::exec_until(connection, k_probe, nullptr, deadline);
    const std::size_t per_statement =
        std::max<std::size_t>(1, 65535 / std::max<std::size_t>(1, key_oids.size()));
    for (std::size_t at = 0; at < slots.size(); at += per_statement) {
        const std::size_t count = std::min(per_statement, slots.size() - at);
        // The parameters point into these until the statement has run.
        std::vector<std::string> extracted;
        extracted.reserve(count);
        BinaryParams params;
        std::string values;
        std::size_t n = 1;
        for (std::size_t i = at; i < at + count; ++i) {
            const Slot* slot = slots[i];
            if (slot->deleted) {
                add_params(params, slot->key_fields, key_oids);
            } else {
                extracted.push_back(key_fields_of(slot->fields()));
                add_params(params, extracted.back(), key_oids);
            }
            values += i == at ? "(" : ", (";
            for (std::size_t c = 0; c < key_oids.size(); ++c) {
                values += "$" + std::to_string(n++) + ", ";
            }
            values += std::to_string(i) + ")";
        }
        detail::exec_until(connection, lock_prefix + values + lock_suffix, &params, deadline);
    }
    detail::exec_until(connection, k_unprobe, nullptr, deadline);
}

std::vector<FoundBadRow> Writer::Impl::check_superseded(Connection& connection,
                                                        const std::vector<const Slot*>& deletes,
                                                        Clock::time_point deadline) {
    std::vector<FoundBadRow> out;
    std::vector<const Slot*> slots;
    for (const Slot* slot : deletes) {
        if (slot->superseded_row_number != 0) {
            slots.push_back(slot);
        }
    }
    if (slots.empty() || exists_prefix.empty() || !key_is_arbiter) {
        return out;
    }
    std::vector<const Slot*> found;
    const std::size_t per_statement =
        std::max<std::size_t>(1, 65535 / std::max<std::size_t>(1, key_oids.size()));
    for (std::size_t at = 0; at < slots.size(); at += per_statement) {
        const std::size_t count = std::min(per_statement, slots.size() - at);
        BinaryParams params;
        std::string values;
        std::size_t n = 1;
        for (std::size_t i = at; i < at + count; ++i) {
            add_params(params, slots[i]->key_fields, key_oids);
            values += i == at ? "(" : ", (";
            for (std::size_t c = 0; c < key_oids.size(); ++c) {
                values += "$" + std::to_string(n++) + ", ";
            }
            values += std::to_string(i) + ")";
        }
        const Result result = detail::exec_until(connection, exists_prefix + values + exists_suffix,
                                                 &params, deadline);
        for (std::size_t r = 0; r < result.rows(); ++r) {
            found.push_back(slots[std::stoull(result.get(r, 0).value_or("0"))]);
        }
    }
    std::sort(found.begin(), found.end(), [](const Slot* a, const Slot* b) {
        return a->superseded_row_number < b->superseded_row_number;
    });
    for (const Slot* slot : found) {
        out.push_back(FoundBadRow{
            slot, false,
            Error("duplicate key value: the key was already in table " + table_label() +
                      " (conflictmode strict; the erase() of the key that came after this write "
                      "does not undo it)",
                  "23505", "", "", true),
            slot->superseded_row_number});
    }
    return out;
}

std::string Writer::Impl::key_fields_of(std::string_view fields) const {
    // Where each column's field starts (its length word), then the key's in key order.
    std::vector<std::size_t> starts;
    starts.reserve(column_names.size());
    std::size_t at = 0;
    for (std::size_t c = 0; c < column_names.size(); ++c) {
        starts.push_back(at);
        const std::int32_t length = get32(fields.data() + at);
        at += 4 + (length < 0 ? 0 : static_cast<std::size_t>(length));
    }
    std::string out;
    for (const std::size_t k : key_positions) {
        const std::int32_t length = get32(fields.data() + starts[k]);
        out.append(
            fields.substr(starts[k], 4 + (length < 0 ? 0 : static_cast<std::size_t>(length))));
    }
    return out;
}

std::uint64_t Writer::Impl::apply_writes(Connection& connection,
                                         const std::vector<const Slot*>& slots, std::size_t begin,
                                         std::size_t end, Clock::time_point deadline,
                                         bool conflict_fallback) {
    if (begin >= end) {
        return 0;
    }
    auto stream = [&](const std::string& sql) {
        CopyIn copy(connection, sql, deadline);
        copy.write(binary_copy_header());
        // Tuples that lie back to back in the buffer (all of them, for a batch in insertion
        // order without repeats) go out as one piece of up to 1 MiB.
        std::string_view run;
        for (std::size_t i = begin; i < end; ++i) {
            const std::string_view tuple = slots[i]->tuple;
            if (!run.empty() && tuple.data() == run.data() + run.size() &&
                run.size() < (1u << 20)) {
                run = std::string_view(run.data(), run.size() + tuple.size());
                continue;
            }
            if (!run.empty()) {
                copy.write(run);
            }
            run = tuple;
        }
        if (!run.empty()) {
            copy.write(run);
        }
        copy.write(binary_copy_trailer());
        return copy.finish().affected_rows();  // COPY ON CONFLICT counts inserted + updated
    };
    switch (statement) {
        case WriteStatement::copy_extension:
        case WriteStatement::copy_plain:
            return stream(copy_sql);
        case WriteStatement::copy_stage:
            detail::exec_until(connection,
                               "TRUNCATE pg_temp." + connection.quote_identifier(stage_name),
                               nullptr, deadline);
            stream(stage_copy_sql);
            if (!stage_lock_sql.empty()) {
                detail::exec_until(connection, stage_lock_sql, nullptr, deadline);
            }
            return detail::exec_until(connection, stage_apply_sql, nullptr, deadline)
                .affected_rows();
        default:
            break;
    }
    WriteStatement kind = statement;
    if (kind == WriteStatement::insert_plain && conflict_fallback) {
        kind = WriteStatement::insert_conflict;
    }
    std::uint64_t written = 0;
    const std::size_t columns = column_names.size();
    const std::size_t per_statement =
        std::max<std::size_t>(1, std::min<std::size_t>(1000, 65535 / columns));
    for (std::size_t at = begin; at < end; at += per_statement) {
        const std::size_t count = std::min(per_statement, end - at);
        BinaryParams params;
        for (std::size_t i = at; i < at + count; ++i) {
            add_params(params, slots[i]->fields(), type_oids);
        }
        std::string sql;
        if (kind == WriteStatement::update_values) {
            sql = update_prefix + placeholders(count, columns) + update_suffix;
        } else {
            sql = insert_prefix + placeholders(count, columns);
            if (kind == WriteStatement::insert_conflict) {
                sql += conflict_suffix;
            }
        }
        written += detail::exec_until(connection, sql, &params, deadline).affected_rows();
    }
    return written;
}

}  // namespace pg_ingest
