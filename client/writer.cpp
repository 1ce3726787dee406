#include <pg_ingest/writer.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include <pg_ingest/copy.hpp>

#include "exec.hpp"

namespace pg_ingest {

namespace {

// The wait before retry `retry` (0-based): `base` doubled per retry, but never more than
// max(base, 30 s), so that many retries do not add up to hours (close() waits for them).
std::chrono::milliseconds back_off_wait(std::chrono::milliseconds base, int retry) {
    const std::chrono::milliseconds cap = std::max(base, std::chrono::milliseconds(30000));
    std::chrono::milliseconds wait = base;
    for (int i = 0; i < retry && wait < cap; ++i) {
        wait = std::min(cap, wait * 2);
    }
    return wait;
}

using Clock = Connection::Clock;
using detail::BinaryParams;

std::atomic<std::uint64_t> g_writer_ids{0};

Error usage_error(const std::string& message, const char* sqlstate) {
    return Error(message, sqlstate, "", "", true);
}

bool row_error(const Error& error) {
    return is_row_error(error);
}

// "SQLSTATE 23514, row 7": what a log line may say of an error. Not its message, which can quote
// the row's values.
std::string error_summary(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const Error& e) {
        std::string text = "SQLSTATE " + (e.sqlstate().empty() ? "none" : e.sqlstate());
        if (e.row_number() != 0) {
            text += ", row " + std::to_string(e.row_number());
        }
        return text;
    } catch (const std::exception&) {
        return "an exception that is no pg_ingest::Error (thrown by a hook)";
    } catch (...) {
        return "an exception of unknown type (thrown by a hook)";
    }
}

}  // namespace

// Errors that belong to a row (and would fail the same way when re-sent) rather than to the
// statement, the session or the server.
bool is_row_error(const Error& error) noexcept {
    const std::string& state = error.sqlstate();
    if (!error.connection_usable() || error.retryable() || state.size() != 5) {
        return false;
    }
    const std::string cls = state.substr(0, 2);
    // 54000 is a limit one row can exceed on its own ("index row size ... exceeds maximum");
    // the rest of class 54 (stack depth, too many columns) belongs to the statement.
    return cls == "21" || cls == "22" || cls == "23" || cls == "44" || cls == "P0" ||
           state == "54000";
}

namespace {

void put16(std::string& out, std::uint16_t v) {
    out += static_cast<char>(v >> 8);
    out += static_cast<char>(v & 0xff);
}

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

struct Slot {
    std::string key;         // canonical key bytes (sort and dedupe)
    bool deleted = false;    // a delete of the key comes first
    bool has_write = false;  // then this write
    // The write as a binary COPY tuple (int16 field count, then the encoded fields in writer
    // column order): bytes [fields_at, fields_at + fields_size) of the batch's buffer; `tuple`
    // points there while the batch is sent.
    std::size_t fields_at = 0;
    std::size_t fields_size = 0;
    std::string_view tuple;
    std::string_view fields() const { return tuple.substr(2); }
    std::string key_fields;  // encoded key fields, key order (deletes)
    std::uint64_t row_number = 0;
    std::uint64_t delete_row_number = 0;
    Row values;  // kept only when a reject reports its row (exceptionmode=ignore)
    Row key_values;
};

// Key bytes -> position in a batch's slots, open addressing over the slots' own keys: no
// allocation per row (this runs for every row written).
class KeyIndex {
  public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    // The position of `key`, or npos after recording `position` (the caller's next slot) for it.
    std::size_t find_or_add(const std::vector<Slot>& slots, std::string_view key,
                            std::size_t position) {
        if ((m_used + 1) * 2 > m_buckets.size()) {
            grow(slots);
        }
        const std::size_t mask = m_buckets.size() - 1;
        const std::size_t hash = std::hash<std::string_view>{}(key);
        const auto tag = static_cast<std::uint32_t>(static_cast<std::uint64_t>(hash) >> 32);
        for (std::size_t b = hash & mask;; b = (b + 1) & mask) {
            const std::size_t entry = m_buckets[b];
            if (entry == 0) {
                m_buckets[b] = position + 1;
                m_tags[b] = tag;
                ++m_used;
                return npos;
            }
            // The tag spares reading another slot's key (a cache miss) on most collisions.
            if (m_tags[b] == tag && slots[entry - 1].key == key) {
                return entry - 1;
            }
        }
    }

  private:
    void grow(const std::vector<Slot>& slots) {
        std::vector<std::size_t> old = std::move(m_buckets);
        m_buckets.assign(std::max<std::size_t>(1024, old.size() * 2), 0);
        m_tags.assign(m_buckets.size(), 0);
        const std::size_t mask = m_buckets.size() - 1;
        for (const std::size_t entry : old) {
            if (entry == 0) {
                continue;
            }
            const std::size_t hash = std::hash<std::string_view>{}(slots[entry - 1].key);
            std::size_t b = hash & mask;
            while (m_buckets[b] != 0) {
                b = (b + 1) & mask;
            }
            m_buckets[b] = entry;
            m_tags[b] = static_cast<std::uint32_t>(static_cast<std::uint64_t>(hash) >> 32);
        }
    }

    std::vector<std::size_t> m_buckets;  // position + 1; 0 = empty
    std::vector<std::uint32_t> m_tags;   // high bits of the entry's key hash
    std::size_t m_used = 0;
};

struct Batch {
    std::vector<Slot> slots;
    std::string data;  // every write's encoded fields, back to back
    KeyIndex index;
    std::size_t operations = 0;
    std::size_t bytes = 0;
    Clock::time_point started;
    // Set when the connection was lost while this batch's COMMIT was in flight and its outcome
    // could not be read yet: the transaction id to ask txid_status() about before any re-send,
    // and the rows that attempt rejected (reported only if it turns out committed).
    std::uint64_t unresolved_xid = 0;
    std::vector<RejectedRow> unresolved_rejects;
    std::uint64_t unresolved_written = 0;
};

enum class WriteStatement {
    copy_extension,
    copy_plain,
    copy_stage,
    insert_plain,
    insert_conflict,
    update_values
};

// Thrown internally when the connection broke while COMMIT was in flight: the transaction may
// or may not have committed. Re-sending blindly would load an append batch twice.
struct CommitUnknown {
    std::uint64_t xid;
    Error error;
};

// refused: the server answered the question with an error (no privilege on txid_status(), a
// statement_timeout), which asking again at once would not change.
enum class CommitOutcome { committed, aborted, unreachable, refused, unknown };

// A row (or delete) that failed on its own in isolation; thrown internally in strict mode to name
// the batch's bad row.
struct FoundBadRow {
    const Slot* slot;
    bool is_delete;
    Error error;
};

std::uint64_t operation_number(const Slot& slot, bool is_delete) {
    return is_delete ? slot.delete_row_number : slot.row_number;
}

// Part of a batch sent as statements of its own: deletes or writes.
struct Step {
    bool deletes = false;
    std::vector<const Slot*> slots;
};
using Plan = std::vector<Step>;

// The batch's operations in the order they were issued (each key's delete and write that survived
// deduplication, at their own row numbers: a key's delete always comes before its write), runs of
// one kind as one step, each step in key order as the batch's statements are.
Plan issue_order_plan(const std::vector<const Slot*>& deletes,
                      const std::vector<const Slot*>& writes) {
    struct Operation {
        std::uint64_t number;
        const Slot* slot;
        bool is_delete;
    };
    std::vector<Operation> operations;
    operations.reserve(deletes.size() + writes.size());
    for (const Slot* slot : deletes) {
        operations.push_back({slot->delete_row_number, slot, true});
    }
    for (const Slot* slot : writes) {
        operations.push_back({slot->row_number, slot, false});
    }
    std::sort(operations.begin(), operations.end(),
              [](const Operation& a, const Operation& b) { return a.number < b.number; });
    Plan plan;
    for (const Operation& operation : operations) {
        if (plan.empty() || plan.back().deletes != operation.is_delete) {
            plan.push_back(Step{operation.is_delete, {}});
        }
        plan.back().slots.push_back(operation.slot);
    }
    for (Step& step : plan) {
        std::sort(step.slots.begin(), step.slots.end(),
                  [](const Slot* a, const Slot* b) { return a->key < b->key; });
    }
    return plan;
}

}  // namespace

struct Writer::Impl {
    // Waiting for (or opening) a pooled connection is bounded by connecttimeoutms too, not only
    // by the flush attempt's deadline.
    Clock::time_point connect_deadline(Clock::time_point deadline) const {
        return std::min(deadline, Clock::now() + options.connect_timeout);
    }

    std::shared_ptr<ConnectionPool> pool;
    Options options;
    WriterHooks hooks;
    TableSchema schema;
    std::vector<std::string> column_names;
    std::vector<ColumnType> types;
    std::vector<std::uint32_t> type_oids;
    std::vector<bool> not_null;
    std::vector<bool> identity_always;       // GENERATED ALWAYS identity: written, never updated
    std::vector<std::size_t> key_positions;  // into the writer's columns
    std::vector<std::string> key_names;
    std::vector<std::uint32_t> key_oids;
    bool keyed = false;
    bool key_is_arbiter = false;  // a unique index on exactly the key: ON CONFLICT (key) works
    // writemode insert with upsert/ignore may re-send with ON CONFLICT (key): only with an
    // arbiter, else every such statement fails with 42P10 and hides the real error.
    bool insert_may_use_on_conflict = false;
    bool keep_values = false;  // rejects report their rows' values (exceptionmode=ignore)
    bool extension = false;
    WriteStatement statement = WriteStatement::insert_plain;

    // SQL built once at open (identifiers quoted by the server's rules).
    std::string qualified;
    std::string column_list;
    std::string copy_sql;
    std::string stage_name;
    std::string stage_create_sql;
    std::string stage_copy_sql;
    std::string stage_apply_sql;
    std::string stage_lock_sql;
    std::string insert_prefix;
    std::string conflict_suffix;
    std::string update_prefix;
    std::string update_suffix;
    std::string delete_prefix;
    // SELECT ... FOR NO KEY UPDATE of a batch's keys joined to a VALUES list of (key, position)
    // (see lock_keys); empty when the batches' writes never update.
    std::string lock_prefix, lock_suffix;
    std::string key_tuple;

    std::mutex batch_mutex;
    Batch batch;
    std::uint64_t row_counter = 0;
    bool closed = false;
    bool closing = false;  // close() was called: no write()/erase() is taken from then on
    std::exception_ptr pending_error;

    std::mutex flush_mutex;
    std::deque<Batch> failed_batches;  // kept after exhausted retries; sent first

    mutable std::mutex metrics_mutex;
    WriterMetrics metrics;

    // The writer's own thread: sends a full batch (backgroundflush) and a batch whose
    // batchwritetimeoutms has passed. State below is guarded by batch_mutex.
    std::thread flusher;
    std::condition_variable flusher_wakeup;  // batch full, timer due, error consumed, stopping
    std::condition_variable batch_space;     // the full batch was taken, or the flusher failed
    bool flusher_running = false;
    std::thread::id flusher_id;  // the writer's thread, once it runs (under batch_mutex)
    bool stopping = false;
    // The batch of pending_error is kept (failed_batches) and is re-sent by the next flush: a
    // later flush that sends it (or fails with a fresh error about it) supersedes the error.
    bool pending_error_kept = false;
    // failed_batches is not empty (as the last flush left it). The writer's thread sends them
    // again at retry_due, which moves further off (the retry back-off) each time they fail.
    bool have_kept = false;
    Clock::time_point retry_due;
    int kept_rounds = 0;  // failed flushes since kept batches were last all sent

    void log(LogLevel level, const std::string& message) const noexcept {
        if (!hooks.on_log ||
            ((level == LogLevel::info || level == LogLevel::debug) && !options.verbose)) {
            return;
        }
        try {
            hooks.on_log(level, message);
        } catch (...) {  // documented as must-not-throw; a logger failure must not fail a load
        }
    }

    std::string table_label() const { return schema.schema_name() + "." + schema.table_name(); }

    void open(std::string_view table, std::vector<std::string> requested);
    void build_sql(const Connection& connection);

    // -- buffering
    void add_write(Row row);
    void add_erase(Row key);
    void rethrow_pending();
    // Throws pending_error when it dropped rows (batch_mutex held). A kept batch's error is left
    // to the flush that sends that batch again.
    void rethrow_dropped() {
        if (pending_error && !pending_error_kept) {
            rethrow_pending();
        }
    }
    bool over_limits() const {
        return batch.operations >= options.batch_size || batch.bytes >= options.batch_bytes;
    }
    // A full batch is the flusher's to send (write() does not send it itself).
    bool hands_off() const { return flusher_running && options.background_flush; }
    void wait_for_space(std::unique_lock<std::mutex>& lock);

    // -- flushing
    // Sends the kept batches, then the current one, under the flush lock. A failure is thrown;
    // on the writer's own thread (`background`) it becomes pending_error instead.
    void flush_all(bool background = false);
    // flush_all's work; `failure_kept` tells, when it throws, whether the batch is kept. On the
    // writer's thread it stops between batches once the writer is being destroyed.
    void send_all(bool& failure_kept, bool background);
    // The wait before the writer's thread sends kept batches again: the retry back-off, continued
    // past the retries each flush makes itself, and never so short that it spins.
    std::chrono::milliseconds kept_retry_wait() const {
        return back_off_wait(std::max(options.retry_wait_time, std::chrono::milliseconds(100)),
                             options.max_retry_times + kept_rounds);
    }
    // After adding an operation (batch_mutex held): wakes the flusher for a full batch; true
    // when the caller has to send the batch itself (no background flush).
    bool must_flush_here();
    void send(Batch& batch, bool& drop);
    // `why`: what kept the question open (for the error's detail).
    CommitOutcome resolve_commit(std::uint64_t xid, std::string& why);
    // Applies `plan` (the batch's `deletes` and `writes`, in steps) in one transaction.
    // `written`: rows of `writes` the server inserted or updated (the statements' counts).
    void run_attempt(Connection& connection, const std::vector<const Slot*>& deletes,
                     const std::vector<const Slot*>& writes, const Plan& plan,
                     Clock::time_point deadline, bool isolate, bool stop_at_first,
                     bool conflict_fallback, std::vector<RejectedRow>& rejects,
                     std::uint64_t& written);
    void apply_deletes(Connection& connection, const std::vector<const Slot*>& slots,
                       std::size_t begin, std::size_t end, Clock::time_point deadline);
    // Locks the existing rows of every key of the batch, in the server's key order, before its
    // deletes and writes (see run_attempt).
    void lock_keys(Connection& connection, const std::vector<const Slot*>& deletes,
                   const std::vector<const Slot*>& writes, Clock::time_point deadline);
    // The encoded key fields (key order) of a write's tuple, as Slot::key_fields has them.
    std::string key_fields_of(std::string_view fields) const;
    // Returns the rows inserted or updated.
    std::uint64_t apply_writes(Connection& connection, const std::vector<const Slot*>& slots,
                               std::size_t begin, std::size_t end, Clock::time_point deadline,
                               bool conflict_fallback);
    // Applies `plan` row by row where it fails; `failed`: the rows that still fail in the end.
    // Returns the rows inserted or updated.
    std::uint64_t isolate_plan(Connection& connection, const Plan& plan, Clock::time_point deadline,
                               bool conflict_fallback, std::vector<FoundBadRow>& failed);
    // Returns the rows inserted or updated by the ranges that were kept; appends the rows that
    // failed alone to `failed`.
    std::uint64_t isolate(Connection& connection, const std::vector<const Slot*>& slots,
                          bool deletes, std::size_t begin, std::size_t end,
                          Clock::time_point deadline, bool conflict_fallback,
                          std::vector<FoundBadRow>& failed);

    void flusher_loop();
    void stop_flusher() noexcept;
};

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
// Buffering

void Writer::Impl::rethrow_pending() {
    if (pending_error) {
        std::exception_ptr error = pending_error;
        pending_error = nullptr;
        flusher_wakeup.notify_all();  // a full batch may be sent again
        std::rethrow_exception(error);
    }
}

// Back-pressure: while the flusher has a full batch to take, write() waits (at most two batches
// are buffered: the one being sent and the full one). A flusher failure is thrown here.
void Writer::Impl::wait_for_space(std::unique_lock<std::mutex>& lock) {
    for (;;) {
        rethrow_pending();
        if (closing) {  // set by close() before anything else, so also when closed
            throw usage_error("writer is closed", "55000");
        }
        if (!(hands_off() && batch.operations > 0 && over_limits())) {
            return;
        }
        batch_space.wait(lock);
    }
}

void Writer::Impl::add_write(Row row) {
    std::unique_lock<std::mutex> lock(batch_mutex);
    wait_for_space(lock);
    const std::uint64_t number = row_counter + 1;
    if (row.size() != column_names.size()) {
        throw usage_error("row " + std::to_string(number) + " has " + std::to_string(row.size()) +
                              " values; the writer has " + std::to_string(column_names.size()) +
                              " columns",
                          "22P04");
    }
    Slot slot;
    // The "column, row" prefix of a message is built only when there is an error: this loop
    // runs for every value written.
    const auto where = [&](std::size_t i) {
        return "column \"" + column_names[i] + "\", row " + std::to_string(number);
    };
    // Encoded straight into the batch's buffer; a refused row leaves nothing there.
    const std::size_t start = batch.data.size();
    try {
        put16(batch.data, static_cast<std::uint16_t>(column_names.size()));
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (row[i].is_null() && not_null[i]) {
                throw usage_error(where(i) + ": NULL in a NOT NULL column", "23502");
            }
            try {
                encode_field(row[i], types[i], batch.data, "");
            } catch (const Error& error) {
                throw Error(where(i) + ": " + error.what(), error.sqlstate(), error.detail(),
                            error.hint(), true);
            }
        }
        // Only the key's comparison bytes: its encoded fields are needed for deletes, which
        // erase() encodes itself.
        for (const std::size_t k : key_positions) {
            if (row[k].is_null()) {
                throw usage_error(where(k) + ": NULL in a key column", "23502");
            }
            append_key_bytes(row[k], types[k], slot.key);
        }
    } catch (...) {
        batch.data.resize(start);
        throw;
    }
    slot.fields_at = start;
    slot.fields_size = batch.data.size() - start;
    ++row_counter;
    std::size_t bytes = slot.fields_size - 2;  // encoded fields, without the tuple's count
    slot.has_write = true;
    slot.row_number = number;
    if (keep_values) {
        slot.values = std::move(row);
    }
    std::optional<RejectedRow> duplicate;
    std::uint64_t deduplicated = 0;
    const std::size_t found =
        keyed ? batch.index.find_or_add(batch.slots, slot.key, batch.slots.size()) : KeyIndex::npos;
    if (found == KeyIndex::npos) {
        batch.slots.push_back(std::move(slot));
    } else {
        Slot& existing = batch.slots[found];
        bool taken = false;
        // The write replaces the slot's fields (the old bytes stay unused in the buffer).
        const auto replace = [&] {
            taken = true;
            existing.fields_at = slot.fields_at;
            existing.fields_size = slot.fields_size;
            existing.values = std::move(slot.values);
            existing.row_number = number;
        };
        switch (options.conflict_mode) {
            case ConflictMode::upsert:
                deduplicated = existing.has_write ? 1 : 0;
                replace();
                existing.has_write = true;
                break;
            case ConflictMode::ignore:
                if (existing.has_write) {
                    deduplicated = 1;  // first wins
                } else {
                    replace();
                    existing.has_write = true;
                }
                break;
            case ConflictMode::update:
                deduplicated = 1;
                if (existing.has_write) {
                    replace();
                }  // else deleted earlier in the batch: nothing left to update
                break;
            case ConflictMode::strict:
                if (existing.has_write) {
                    duplicate = RejectedRow{number, false, "23505",
                                            "duplicate key value: the key was already written "
                                            "in this batch (conflictmode strict)",
                                            keep_values ? std::move(slot.values) : std::move(row)};
                } else {
                    replace();
                    existing.has_write = true;
                }
                break;
        }
        if (!taken) {  // nothing refers to the bytes
            batch.data.resize(start);
            bytes = 0;
        }
    }
    if (batch.operations == 0) {
        batch.started = Clock::now();
        flusher_wakeup.notify_all();
    }
    ++batch.operations;
    batch.bytes += bytes;
    {
        std::lock_guard<std::mutex> metrics_lock(metrics_mutex);
        ++metrics.rows_in;
        metrics.rows_deduplicated += deduplicated;
        if (duplicate) {
            ++metrics.rows_rejected;
        }
    }
    const bool full = must_flush_here();
    lock.unlock();
    if (duplicate) {
        if (options.exception_mode == ExceptionMode::strict) {
            Error named("row " + std::to_string(number) + ": " + duplicate->message, "23505", "",
                        "", true);
            named.set_row_number(number);
            throw named;
        }
        if (hooks.on_reject) {
            hooks.on_reject(*duplicate);
        }
    }
    if (full) {
        flush_all();
    }
}

void Writer::Impl::add_erase(Row key) {
    std::unique_lock<std::mutex> lock(batch_mutex);
    wait_for_space(lock);
    if (!keyed) {
        throw usage_error("erase() needs a key: table " + table_label() + " has none", "0A000");
    }
    const std::uint64_t number = row_counter + 1;
    if (key.size() != key_positions.size()) {
        throw usage_error("delete " + std::to_string(number) + " has " +
                              std::to_string(key.size()) + " key values; the key has " +
                              std::to_string(key_positions.size()) + " columns",
                          "22P04");
    }
    std::string key_bytes;
    std::string key_fields;
    for (std::size_t i = 0; i < key.size(); ++i) {
        const std::size_t k = key_positions[i];
        const std::string what =
            "column \"" + column_names[k] + "\", row " + std::to_string(number);
        if (key[i].is_null()) {
            throw usage_error(what + ": NULL in a key column", "23502");
        }
        encode_field(key[i], types[k], key_fields, what);
        append_key_bytes(key[i], types[k], key_bytes);
    }
    ++row_counter;
    std::uint64_t deduplicated = 0;
    const std::size_t found = batch.index.find_or_add(batch.slots, key_bytes, batch.slots.size());
    Slot* slot = nullptr;
    if (found == KeyIndex::npos) {
        batch.slots.emplace_back();
        slot = &batch.slots.back();
        slot->key = std::move(key_bytes);
    } else {
        slot = &batch.slots[found];
        deduplicated = (slot->has_write ? 1 : 0) + (slot->deleted ? 1 : 0);
    }
    slot->deleted = true;
    slot->has_write = false;
    slot->fields_size = 0;
    slot->values.clear();
    slot->key_fields = std::move(key_fields);
    slot->key_values = std::move(key);
    slot->delete_row_number = number;
    if (batch.operations == 0) {
        batch.started = Clock::now();
        flusher_wakeup.notify_all();
    }
    ++batch.operations;
    batch.bytes += slot->key_fields.size();
    {
        std::lock_guard<std::mutex> metrics_lock(metrics_mutex);
        ++metrics.deletes_in;
        metrics.rows_deduplicated += deduplicated;
    }
    const bool full = must_flush_here();
    lock.unlock();
    if (full) {
        flush_all();
    }
}

// ---------------------------------------------------------------------------------------------
// Flushing

bool Writer::Impl::must_flush_here() {
    if (!over_limits()) {
        return false;
    }
    if (hands_off()) {
        flusher_wakeup.notify_all();
        return false;
    }
    return true;
}

void Writer::Impl::flush_all(bool background) {
    std::lock_guard<std::mutex> flush_lock(flush_mutex);
    {
        // A failure that dropped a batch is thrown before anything after it is sent: a caller
        // that replays from its last good point must not find later rows already committed.
        std::lock_guard<std::mutex> lock(batch_mutex);
        if (pending_error && !pending_error_kept) {
            return;
        }
    }
    bool kept = false;
    std::exception_ptr failure;
    try {
        send_all(kept, background);
    } catch (...) {
        failure = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(batch_mutex);
    // Every batch kept by an earlier failure has now been sent, or has failed again with an
    // error of its own: a pending error about a kept batch says nothing new. An error whose
    // rows were dropped stays until it is thrown.
    if (pending_error && pending_error_kept) {
        pending_error = nullptr;
        pending_error_kept = false;
        flusher_wakeup.notify_all();
    }
    // Batches still kept are the writer's thread's to send again after the back-off (also when
    // no call comes: a quiet producer may never make one).
    have_kept = !failed_batches.empty();
    if (!have_kept) {
        kept_rounds = 0;
    } else if (failure) {
        retry_due = Clock::now() + kept_retry_wait();
        kept_rounds = std::min(kept_rounds + 1, 64);
        flusher_wakeup.notify_all();
    }
    if (!failure) {
        return;
    }
    if (!background) {
        std::rethrow_exception(failure);
    }
    // Stored before the flush lock is released: a flush() or close() that waited for this
    // flush finds it when it gets the lock.
    pending_error = failure;
    pending_error_kept = kept;
    batch_space.notify_all();
}

void Writer::Impl::send_all(bool& failure_kept, bool background) {
    // The destructor waits for the batch the writer's thread is sending, then discards the rest:
    // it never sends anything new.
    const auto destroying = [&] {
        std::lock_guard<std::mutex> lock(batch_mutex);
        return background && stopping;
    };
    // Earlier batches whose retries ran out go first, in order.
    while (!failed_batches.empty()) {
        bool drop = false;
        try {
            send(failed_batches.front(), drop);
        } catch (...) {
            if (drop) {
                failed_batches.pop_front();
            }
            failure_kept = !drop;
            throw;
        }
        failed_batches.pop_front();
        if (destroying()) {
            return;
        }
    }
    Batch current;
    {
        std::lock_guard<std::mutex> lock(batch_mutex);
        if (background && stopping) {
            return;
        }
        std::swap(current, batch);
        batch_space.notify_all();
    }
    if (current.slots.empty()) {
        return;
    }
    bool drop = false;
    try {
        send(current, drop);
    } catch (...) {
        if (!drop) {
            failed_batches.push_back(std::move(current));
        }
        failure_kept = !drop;
        throw;
    }
}

void Writer::Impl::send(Batch& sending, bool& drop) {
    drop = false;
    std::vector<const Slot*> deletes;
    std::vector<const Slot*> writes;
    std::size_t bytes = 0;
    // The buffer no longer grows (this batch was taken from the writer): views into it hold.
    for (Slot& slot : sending.slots) {
        if (slot.deleted) {
            deletes.push_back(&slot);
            bytes += slot.key_fields.size();
        }
        if (slot.has_write) {
            slot.tuple = std::string_view(sending.data).substr(slot.fields_at, slot.fields_size);
            writes.push_back(&slot);
            bytes += slot.fields_size - 2;
        }
    }
    if (keyed) {  // without a key the slots are already in insertion order
        const auto by_key = [](const Slot* a, const Slot* b) { return a->key < b->key; };
        for (auto* list : {&deletes, &writes}) {
            if (!std::is_sorted(list->begin(), list->end(), by_key)) {  // often written in order
                std::sort(list->begin(), list->end(), by_key);
            }
        }
    }

    // Deletes first, then writes (see lock_keys). When that fails with a row error in a batch of
    // both, the batch is sent in the order its operations were issued (see below).
    Plan by_kind;
    if (!deletes.empty()) {
        by_kind.push_back(Step{true, deletes});
    }
    if (!writes.empty()) {
        by_kind.push_back(Step{false, writes});
    }
    Plan in_issue_order;
    const Plan* plan = &by_kind;

    const auto started = Clock::now();
    bool isolate = false;
    bool conflict_fallback = false;
    int attempt = 0;
    std::vector<RejectedRow> rejects;
    std::uint64_t written = 0;  // of the attempt that committed: rows inserted or updated
    // Waits before the next attempt after a transient error, or throws it when the retries are
    // spent (the batch is kept).
    const auto back_off = [&](const Error& error) {
        if (attempt >= options.max_retry_times) {
            {
                std::lock_guard<std::mutex> lock(metrics_mutex);
                ++metrics.flush_failures;
            }
            log(LogLevel::error, "batch of " + std::to_string(sending.operations) +
                                     " operations on " + table_label() + " failed after " +
                                     std::to_string(attempt) + " retries: [" + error.sqlstate() +
                                     "] " + error.what());
            throw error;
        }
        const auto wait = back_off_wait(options.retry_wait_time, attempt);
        ++attempt;
        {
            std::lock_guard<std::mutex> lock(metrics_mutex);
            ++metrics.retries;
        }
        log(LogLevel::warning, "transient error on " + table_label() + " [" + error.sqlstate() +
                                   "] " + error.what() + "; retry " + std::to_string(attempt) +
                                   " of " + std::to_string(options.max_retry_times) + " in " +
                                   std::to_string(wait.count()) + " ms");
        // The destructor (or a failed close()) stops the writer's thread: it gives up its
        // back-off then, the batch kept, instead of making the caller wait out its retries.
        std::unique_lock<std::mutex> lock(batch_mutex);
        if (std::this_thread::get_id() != flusher_id) {
            lock.unlock();
            std::this_thread::sleep_for(wait);
        } else if (flusher_wakeup.wait_for(lock, wait, [&] { return stopping; })) {
            throw error;
        }
    };
    // The connection was lost with COMMIT in flight (now or in an earlier flush): learn the
    // outcome before anything is sent again. Returns true when the batch is committed. The batch
    // keeps its question (unresolved_xid) until the server has answered it: a batch kept without
    // it would be sent again, and an append batch could load twice.
    const auto settle_lost_commit = [&](std::uint64_t xid, const Error& error,
                                        std::vector<RejectedRow> attempt_rejects,
                                        std::uint64_t attempt_written) {
        {
            std::lock_guard<std::mutex> lock(metrics_mutex);
            ++metrics.commits_resolved;
        }
        std::string why;
        const CommitOutcome outcome = resolve_commit(xid, why);
        log(LogLevel::warning,
            "connection lost while committing a batch on " + table_label() + "; transaction " +
                std::to_string(xid) + " " +
                (outcome == CommitOutcome::committed ? "committed: not re-sent"
                 : outcome == CommitOutcome::aborted ? "aborted: re-sending"
                 : outcome == CommitOutcome::unknown ? "has an unknown outcome"
                                                     : "could not be checked yet (" + why + ")"));
        switch (outcome) {
            case CommitOutcome::committed:
                sending.unresolved_xid = 0;
                sending.unresolved_rejects.clear();
                rejects = std::move(attempt_rejects);
                written = attempt_written;
                return true;
            case CommitOutcome::aborted:
                sending.unresolved_xid = 0;
                sending.unresolved_rejects.clear();
                return false;
            case CommitOutcome::unreachable:
            case CommitOutcome::refused: {
                // Kept: the next flush asks again before sending it.
                sending.unresolved_xid = xid;
                sending.unresolved_rejects = std::move(attempt_rejects);
                sending.unresolved_written = attempt_written;
                {
                    std::lock_guard<std::mutex> lock(metrics_mutex);
                    ++metrics.flush_failures;
                }
                // Refused, the question is the caller's to fix (e.g. GRANT EXECUTE ON
                // txid_status()): 08007, not retryable, so a retry loop does not spin on it.
                throw Error("connection lost while committing a batch of " +
                                std::to_string(sending.operations) + " operations on " +
                                table_label() + "; whether it committed is checked before the " +
                                "next flush (" + error.what() + ")",
                            outcome == CommitOutcome::refused ? "08007" : "08006",
                            "the server could not be asked whether transaction " +
                                std::to_string(xid) + " committed: " + why,
                            "flush() or close() asks again before sending anything; a writer "
                            "destroyed before that discards the batch, so check the table for "
                            "its rows",
                            false);
            }
            case CommitOutcome::unknown:
                break;
        }
        // txid_status() no longer knows the transaction (it is older than the commit log the
        // server keeps): neither re-sending nor dropping is known to be right.
        drop = true;
        {
            std::lock_guard<std::mutex> lock(metrics_mutex);
            ++metrics.flush_failures;
            metrics.rows_discarded += sending.operations;
        }
        log(LogLevel::error, "batch of " + std::to_string(sending.operations) + " operations on " +
                                 table_label() + " dropped: the outcome of its transaction " +
                                 std::to_string(xid) +
                                 " is unknown (SQLSTATE 08007); check the table for its rows");
        throw Error("the outcome of a batch of " + std::to_string(sending.operations) +
                        " operations on " + table_label() + " (transaction " + std::to_string(xid) +
                        ") is unknown; it was not re-sent",
                    "08007", "", "check the table for the batch's rows", true);
    };
    bool committed = false;
    if (sending.unresolved_xid != 0) {
        committed = settle_lost_commit(
            sending.unresolved_xid,
            Error("an earlier flush lost its connection", "08006", "", "", false),
            sending.unresolved_rejects, sending.unresolved_written);
    }
    while (!committed) {
        const auto deadline = Clock::now() + options.flush_timeout;
        try {
            rejects.clear();
            ConnectionPool::Lease lease = pool->acquire(connect_deadline(deadline));
            try {
                run_attempt(*lease, deletes, writes, *plan, deadline, isolate, false,
                            conflict_fallback, rejects, written);
            } catch (...) {
                if (lease->is_open() && detail::in_transaction(*lease)) {
                    try {
                        detail::exec_until(*lease, "ROLLBACK", nullptr, deadline);
                    } catch (...) {
                        lease.discard();
                    }
                }
                throw;
            }
            break;
        } catch (const CommitUnknown& lost) {
            if (settle_lost_commit(lost.xid, lost.error, rejects, written)) {
                break;
            }
            back_off(lost.error);  // it rolled back: an ordinary transient failure
            continue;
        } catch (const Error& error) {
            if (error.retryable()) {
                back_off(error);
                continue;
            }
            if (error.sqlstate() == "23505" && !conflict_fallback && insert_may_use_on_conflict) {
                log(LogLevel::info, "batch insert hit existing keys; re-sending with ON CONFLICT");
                conflict_fallback = true;
                continue;
            }
            // Deletes before writes is not the order issued: a write that re-points a row away
            // from a parent erased after it fails that order (23503 under a foreign key that is
            // not deferred) although the batch is valid. So a batch of both that fails with a row
            // error is sent once more in the order issued before rows are isolated or named, and
            // stays in that order from then on.
            if (row_error(error) && plan == &by_kind && !deletes.empty() && !writes.empty()) {
                log(LogLevel::info, "data error [" + error.sqlstate() +
                                        "] in a batch of deletes and writes on " + table_label() +
                                        "; re-sending it in the order the operations were issued");
                in_issue_order = issue_order_plan(deletes, writes);
                plan = &in_issue_order;
                continue;
            }
            if (row_error(error) && options.exception_mode == ExceptionMode::ignore && !isolate) {
                log(LogLevel::info, "data error [" + error.sqlstate() + "] in a batch on " +
                                        table_label() + "; isolating bad rows");
                isolate = true;
                // In insert mode the rows of existing keys would fail one by one with 23505
                // and be rejected: isolate with ON CONFLICT from the start.
                conflict_fallback = conflict_fallback || insert_may_use_on_conflict;
                continue;
            }
            if (row_error(error) && options.exception_mode == ExceptionMode::strict) {
                // Find the bad row in a transaction that is rolled back, then fail.
                std::optional<FoundBadRow> found;
                try {
                    ConnectionPool::Lease lease = pool->acquire(connect_deadline(deadline));
                    std::vector<RejectedRow> ignored;
                    std::uint64_t ignored_written = 0;
                    try {
                        run_attempt(*lease, deletes, writes, *plan, deadline, true, true,
                                    conflict_fallback, ignored, ignored_written);
                    } catch (const FoundBadRow& bad) {
                        found = bad;
                    }
                    if (lease->is_open() && detail::in_transaction(*lease)) {
                        detail::exec_until(*lease, "ROLLBACK", nullptr, deadline);
                    }
                } catch (const Error&) {
                    found.reset();  // could not pin it down; report the batch error below
                }
                drop = true;
                {
                    std::lock_guard<std::mutex> lock(metrics_mutex);
                    ++metrics.flush_failures;
                    metrics.rows_discarded += sending.operations;
                }
                const std::string dropped = "batch of " + std::to_string(sending.operations) +
                                            " operations on " + table_label() +
                                            " dropped (exceptionmode strict): ";
                if (found) {
                    const std::uint64_t number =
                        found->is_delete ? found->slot->delete_row_number : found->slot->row_number;
                    log(LogLevel::error, dropped + "row " + std::to_string(number) +
                                             (found->is_delete ? " (delete)" : "") +
                                             " failed with SQLSTATE " + found->error.sqlstate() +
                                             "; nothing of the batch was committed");
                    Error named(
                        "row " + std::to_string(number) + (found->is_delete ? " (delete)" : "") +
                            " of table " + table_label() + ": " + found->error.what(),
                        found->error.sqlstate(), found->error.detail(), found->error.hint(), true);
                    named.set_row_number(number);
                    throw named;
                }
                log(LogLevel::error, dropped + "it failed with SQLSTATE " + error.sqlstate() +
                                         " (the row could not be found); nothing of the batch "
                                         "was committed");
                throw Error("batch on " + table_label() + " failed: " + error.what(),
                            error.sqlstate(), error.detail(), error.hint(), true);
            }
            {
                std::lock_guard<std::mutex> lock(metrics_mutex);
                ++metrics.flush_failures;
            }
            // Kept: logged here too, as a later flush that sends the batch supersedes the error.
            // A row error (one isolation could not place) may quote values: its SQLSTATE only.
            log(LogLevel::error, "batch of " + std::to_string(sending.operations) +
                                     " operations on " + table_label() + " failed: [" +
                                     error.sqlstate() + "] " +
                                     (row_error(error) ? "a row error" : error.what()) +
                                     "; it is kept and sent again first by the next flush");
            throw;
        }
    }
    drop = true;  // committed: whatever happens next, it must never be sent again
    const auto latency =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    {
        std::lock_guard<std::mutex> lock(metrics_mutex);
        ++metrics.flushes;
        metrics.rows_out += writes.size();
        metrics.deletes_out += deletes.size();
        metrics.bytes_out += bytes;
        metrics.rows_rejected += rejects.size();
        // What the server left as it was: a key present (ignore, or upsert with nothing to
        // update), a key absent (update), or a row a BEFORE trigger dropped.
        const std::uint64_t rejected_writes = static_cast<std::uint64_t>(std::count_if(
            rejects.begin(), rejects.end(), [](const RejectedRow& r) { return !r.is_delete; }));
        const std::uint64_t applied = written + rejected_writes;
        metrics.rows_skipped += writes.size() > applied ? writes.size() - applied : 0;
        metrics.last_flush_latency = latency;
        metrics.max_flush_latency = std::max(metrics.max_flush_latency, latency);
        metrics.total_flush_latency += latency;
    }
    log(LogLevel::info, "flushed " + std::to_string(writes.size()) + " rows and " +
                            std::to_string(deletes.size()) + " deletes into " + table_label() +
                            " in " + std::to_string(latency.count() / 1000) + " ms (" +
                            std::to_string(rejects.size()) + " rejected, " +
                            std::to_string(attempt) + " retries)");
    // Reported once, after the commit: a retried attempt never reports twice. A throwing
    // callback still hears of every row; its first exception is thrown after the last one.
    if (hooks.on_reject) {
        std::exception_ptr first;
        for (const auto& reject : rejects) {
            try {
                hooks.on_reject(reject);
            } catch (...) {
                if (!first) {
                    first = std::current_exception();
                }
            }
        }
        if (first) {
            std::rethrow_exception(first);
        }
    }
}

void Writer::Impl::run_attempt(Connection& connection, const std::vector<const Slot*>& deletes,
                               const std::vector<const Slot*>& writes, const Plan& plan,
                               Clock::time_point deadline, bool isolating, bool stop_at_first,
                               bool conflict_fallback, std::vector<RejectedRow>& rejects,
                               std::uint64_t& written) {
    written = 0;
    // The transaction id up front, so that a COMMIT whose reply is lost can be settled with
    // txid_status() on another connection instead of being re-sent blindly.
    const Result begun = detail::exec_until(connection, "BEGIN; SELECT pg_catalog.txid_current()",
                                            nullptr, deadline);
    const std::uint64_t xid = std::stoull(begun.get(0, 0).value_or("0"));
    if (statement == WriteStatement::copy_stage && !writes.empty()) {
        detail::exec_until(connection, stage_create_sql, nullptr, deadline);
    }
    if (isolating) {
        // Deferred constraints are checked per statement here: a violation found only at COMMIT
        // cannot be pinned on a row, and would fail every attempt again.
        detail::exec_until(connection, "SET CONSTRAINTS ALL IMMEDIATE", nullptr, deadline);
        std::vector<FoundBadRow> failed;
        written = isolate_plan(connection, plan, deadline, conflict_fallback, failed);
        if (stop_at_first && !failed.empty()) {
            // Each of these failed alone with every row that goes in applied: name the first one
            // issued.
            throw *std::min_element(failed.begin(), failed.end(),
                                    [](const FoundBadRow& a, const FoundBadRow& b) {
                                        return operation_number(*a.slot, a.is_delete) <
                                               operation_number(*b.slot, b.is_delete);
                                    });
        }
        for (const FoundBadRow& row : failed) {
            std::string message = row.error.what();
            if (!row.error.detail().empty()) {
                message += " (" + row.error.detail() + ")";
            }
            rejects.push_back(RejectedRow{operation_number(*row.slot, row.is_delete), row.is_delete,
                                          row.error.sqlstate(), message,
                                          row.is_delete ? row.slot->key_values : row.slot->values});
        }
    } else {
        lock_keys(connection, deletes, writes, deadline);
        for (const Step& step : plan) {
            if (step.deletes) {
                apply_deletes(connection, step.slots, 0, step.slots.size(), deadline);
            } else {
                written += apply_writes(connection, step.slots, 0, step.slots.size(), deadline,
                                        conflict_fallback);
            }
        }
    }
    if (!stop_at_first) {
        try {
            detail::exec_until(connection, "COMMIT", nullptr, deadline);
        } catch (const Error& error) {
            if (error.connection_usable() || xid == 0) {
                throw;  // the server answered: the transaction did not commit
            }
            throw CommitUnknown{xid, error};
        }
    }
}

CommitOutcome Writer::Impl::resolve_commit(std::uint64_t xid, std::string& why) {
    const std::string sql = "SELECT pg_catalog.txid_status(" + std::to_string(xid) + ")";
    why = "no answer";
    const int attempts = std::max(options.max_retry_times, 3) + 1;
    for (int attempt = 0; attempt < attempts; ++attempt) {
        if (attempt > 0) {
            const auto wait = back_off_wait(
                std::max(options.retry_wait_time, std::chrono::milliseconds(10)), attempt - 1);
            // The destructor stops the writer's thread: it gives up asking then (the batch is
            // kept with its question, as when no answer comes), as back_off() does.
            std::unique_lock<std::mutex> lock(batch_mutex);
            if (std::this_thread::get_id() != flusher_id) {
                lock.unlock();
                std::this_thread::sleep_for(wait);
            } else if (flusher_wakeup.wait_for(lock, wait, [&] { return stopping; })) {
                why = "the writer was stopped while it asked";
                return CommitOutcome::unreachable;
            }
        }
        const auto deadline = Clock::now() + options.flush_timeout;
        try {
            ConnectionPool::Lease lease = pool->acquire(connect_deadline(deadline));
            const Result result = detail::exec_until(*lease, sql, nullptr, deadline);
            const auto& status = result.get(0, 0);
            if (!status) {
                return CommitOutcome::unknown;
            }
            if (*status == "committed") {
                return CommitOutcome::committed;
            }
            if (*status == "aborted") {
                return CommitOutcome::aborted;
            }
            // "in progress": the old backend has not finished ending the transaction yet.
            why = "transaction " + std::to_string(xid) + " was still in progress";
        } catch (const Error& error) {
            // Whatever fails, the question stays open (the batch is kept with it): an error is no
            // answer. One the server gives on a working connection (no privilege on
            // txid_status(), a statement_timeout: 57014) comes again if asked at once.
            why = (error.sqlstate().empty() ? "" : "[" + error.sqlstate() + "] ") + error.what();
            if (!error.retryable() && error.connection_usable()) {
                return CommitOutcome::refused;
            }
        } catch (const std::exception& error) {
            why = error.what();
            return CommitOutcome::unreachable;
        }
    }
    return CommitOutcome::unreachable;
}

// Bisection applies the first half of a failed range before the second, so a row that only a
// later row makes valid (a child before its parent under a foreign key that is not deferred, which
// one statement of both accepts) fails in its half. So the rows that failed are tried again, in
// their order, while that leaves fewer of them failing: a row failing whatever else is applied
// costs one more try. A row applied in a later pass is applied (and counted) once.
std::uint64_t Writer::Impl::isolate_plan(Connection& connection, const Plan& plan,
                                         Clock::time_point deadline, bool conflict_fallback,
                                         std::vector<FoundBadRow>& failed) {
    failed.clear();
    std::uint64_t written = 0;
    for (const Step& step : plan) {
        written += isolate(connection, step.slots, step.deletes, 0, step.slots.size(), deadline,
                           conflict_fallback, failed);
    }
    while (!failed.empty()) {
        Plan again;
        for (const FoundBadRow& row : failed) {
            if (again.empty() || again.back().deletes != row.is_delete) {
                again.push_back(Step{row.is_delete, {}});
            }
            again.back().slots.push_back(row.slot);
        }
        std::vector<FoundBadRow> still;
        for (const Step& step : again) {
            written += isolate(connection, step.slots, step.deletes, 0, step.slots.size(), deadline,
                               conflict_fallback, still);
        }
        const bool fewer = still.size() < failed.size();
        failed = std::move(still);
        if (!fewer) {
            break;
        }
    }
    return written;
}

std::uint64_t Writer::Impl::isolate(Connection& connection, const std::vector<const Slot*>& slots,
                                    bool deletes, std::size_t begin, std::size_t end,
                                    Clock::time_point deadline, bool conflict_fallback,
                                    std::vector<FoundBadRow>& failed) {
    if (begin >= end) {
        return 0;
    }
    detail::exec_until(connection, "SAVEPOINT pg_ingest_isolate", nullptr, deadline);
    try {
        std::uint64_t written = 0;
        if (deletes) {
            apply_deletes(connection, slots, begin, end, deadline);
        } else {
            written = apply_writes(connection, slots, begin, end, deadline, conflict_fallback);
        }
        detail::exec_until(connection, "RELEASE SAVEPOINT pg_ingest_isolate", nullptr, deadline);
        return written;
    } catch (const Error& error) {
        if (!row_error(error)) {
            throw;
        }
        detail::exec_until(connection,
                           "ROLLBACK TO SAVEPOINT pg_ingest_isolate; "
                           "RELEASE SAVEPOINT pg_ingest_isolate",
                           nullptr, deadline);
        if (end - begin == 1) {
            failed.push_back(FoundBadRow{slots[begin], deletes, error});
            return 0;
        }
    }
    const std::size_t middle = begin + (end - begin) / 2;
    const std::uint64_t first =
        isolate(connection, slots, deletes, begin, middle, deadline, conflict_fallback, failed);
    return first +
           isolate(connection, slots, deletes, middle, end, deadline, conflict_fallback, failed);
}

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
            if (options.conflict_mode == ConflictMode::update && update_prefix.empty()) {
                return 0;  // "SELECT 1": only key columns written, nothing to update
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
    if (kind == WriteStatement::update_values && update_prefix.empty()) {
        return 0;  // only key columns written: an update changes nothing
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

// ---------------------------------------------------------------------------------------------
// The flusher thread

void Writer::Impl::flusher_loop() {
    std::unique_lock<std::mutex> lock(batch_mutex);
    flusher_id = std::this_thread::get_id();
    while (!stopping) {
        // Nothing is sent while a failure that dropped rows has not been thrown yet (the next
        // call throws it, then flushing resumes): nothing written after those rows may commit
        // before the caller has heard, and a second failure must never replace it.
        if (pending_error && !pending_error_kept) {
            flusher_wakeup.wait(lock);
            continue;
        }
        if (have_kept) {
            // Kept batches are sent again at retry_due (the retry back-off, so never in a loop),
            // with the current batch after them, until they go through: a batch kept through a
            // short outage does not wait for a call that a quiet producer may never make.
            if (Clock::now() < retry_due) {
                flusher_wakeup.wait_until(lock, retry_due);
                continue;
            }
            lock.unlock();
            flush_all(true);
            lock.lock();
            continue;
        }
        const bool full = options.background_flush && batch.operations > 0 && over_limits();
        if (!full) {
            if (batch.operations == 0 || options.batch_write_timeout.count() == 0) {
                flusher_wakeup.wait(lock);
                continue;
            }
            const auto due = batch.started + options.batch_write_timeout;
            if (Clock::now() < due) {
                flusher_wakeup.wait_until(lock, due);
                continue;
            }
        }
        lock.unlock();
        flush_all(true);
        lock.lock();
    }
}

void Writer::Impl::stop_flusher() noexcept {
    {
        std::lock_guard<std::mutex> lock(batch_mutex);
        stopping = true;
        flusher_running = false;
    }
    flusher_wakeup.notify_all();
    batch_space.notify_all();
    if (flusher.joinable()) {
        flusher.join();
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

Writer::Writer(std::shared_ptr<ConnectionPool> pool, std::string_view table,
               std::vector<std::string> columns, Options options, WriterHooks hooks)
    : m_impl(std::make_unique<Impl>()) {
    if (!pool) {
        throw std::invalid_argument("pg_ingest::Writer: pool is null");
    }
    m_impl->pool = std::move(pool);
    m_impl->options = std::move(options);
    m_impl->hooks = std::move(hooks);
    m_impl->open(table, std::move(columns));
    if (m_impl->options.batch_write_timeout.count() > 0 || m_impl->options.background_flush) {
        m_impl->flusher_running = true;
        m_impl->flusher = std::thread([impl = m_impl.get()] { impl->flusher_loop(); });
    }
}

Writer::Writer(const ConnectionOptions& connection, std::string_view table,
               std::vector<std::string> columns, Options options, WriterHooks hooks)
    : Writer(std::make_shared<ConnectionPool>(
                 connection, ConnectionPool::Settings{options.connection_max_active,
                                                      std::chrono::milliseconds(5000)}),
             table, std::move(columns), options, std::move(hooks)) {}

Writer::~Writer() {
    if (!m_impl) {
        return;
    }
    m_impl->stop_flusher();
    // An error of the writer's thread that no call has thrown: nobody else will ever hear of it.
    std::exception_ptr unthrown;
    bool unthrown_kept = false;
    {
        std::lock_guard<std::mutex> lock(m_impl->batch_mutex);
        unthrown = std::exchange(m_impl->pending_error, nullptr);
        unthrown_kept = m_impl->pending_error_kept;
    }
    if (unthrown) {
        m_impl->log(
            LogLevel::error,
            "writer on " + m_impl->table_label() +
                " destroyed with an error of its flushes never thrown: " + error_summary(unthrown) +
                (unthrown_kept ? " (its batch was kept, and is discarded now)" : ""));
    }
    std::uint64_t discarded = m_impl->batch.operations;
    for (const auto& batch : m_impl->failed_batches) {
        discarded += batch.operations;
    }
    if (discarded > 0) {
        {
            std::lock_guard<std::mutex> lock(m_impl->metrics_mutex);
            m_impl->metrics.rows_discarded += discarded;
        }
        m_impl->log(LogLevel::warning, "writer on " + m_impl->table_label() + " destroyed with " +
                                           std::to_string(discarded) +
                                           " unflushed operations; they were discarded "
                                           "(call close() to flush)");
    }
}

void Writer::write(Row row) {
    m_impl->add_write(std::move(row));
}

void Writer::erase(Row key) {
    m_impl->add_erase(std::move(key));
}

void Writer::flush() {
    // An error of the writer's thread whose batch is kept is not thrown: this flush sends that
    // batch again, and throws its own error if it fails again.
    {
        std::lock_guard<std::mutex> lock(m_impl->batch_mutex);
        m_impl->rethrow_dropped();
    }
    m_impl->flush_all();
    // A background flush that failed while this one waited for it, dropping its rows.
    std::lock_guard<std::mutex> lock(m_impl->batch_mutex);
    m_impl->rethrow_dropped();
}

void Writer::close() {
    {
        std::lock_guard<std::mutex> lock(m_impl->batch_mutex);
        if (m_impl->closed) {
            return;
        }
        // From here on write()/erase() throw: a row taken after the final flush would be
        // discarded by the destructor.
        m_impl->closing = true;
        m_impl->rethrow_dropped();  // a kept batch is sent again below
    }
    try {
        m_impl->flush_all();
    } catch (...) {
        // Nothing more goes out behind the caller's back once close() has failed: a caller that
        // takes the failure as "not loaded" may load the rows again. Another close() retries.
        m_impl->stop_flusher();
        throw;
    }
    {
        std::lock_guard<std::mutex> lock(m_impl->batch_mutex);
        m_impl->rethrow_dropped();
    }
    m_impl->stop_flusher();
    std::lock_guard<std::mutex> lock(m_impl->batch_mutex);
    m_impl->rethrow_pending();  // a flush of the writer's thread that ended meanwhile
    m_impl->closed = true;
}

WriterMetrics Writer::metrics() const {
    std::lock_guard<std::mutex> lock(m_impl->metrics_mutex);
    return m_impl->metrics;
}

const TableSchema& Writer::schema() const noexcept {
    return m_impl->schema;
}

const std::vector<std::string>& Writer::columns() const noexcept {
    return m_impl->column_names;
}

const std::vector<std::string>& Writer::key_columns() const noexcept {
    return m_impl->key_names;
}

bool Writer::uses_extension() const noexcept {
    return m_impl->statement == WriteStatement::copy_extension;
}

}  // namespace pg_ingest
