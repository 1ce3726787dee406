// Internal: what the Writer's modules share — a batch (its slots and their key index), the plan
// of a send, the statement kinds, and Writer::Impl with its state. Not installed.
//   writer.cpp       the public Writer, buffering (write/erase), flushing, the writer's thread
//   writer_send.cpp  sending one batch: attempts, retries, commit outcomes, isolating bad rows
//   writer_sql.cpp   opening (schema, key, modes), the statements, applying them
#pragma once

#include <pg_ingest/writer.hpp>

#include "log_hook.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// Nested below detail: the generic names here (Slot, Batch, Step, Plan) would otherwise share a
// namespace with the library's other internals.
namespace pg_ingest::detail::writer_internal {

// The wait before retry `retry` (0-based): `base` doubled per retry, but never more than
// max(base, 30 s), so that many retries do not add up to hours (close() waits for them).
inline std::chrono::milliseconds back_off_wait(std::chrono::milliseconds base, int retry) {
    const std::chrono::milliseconds cap = std::max(base, std::chrono::milliseconds(30000));
    std::chrono::milliseconds wait = base;
    for (int i = 0; i < retry && wait < cap; ++i) {
        wait = std::min(cap, wait * 2);
    }
    return wait;
}

using Clock = Connection::Clock;

inline Error usage_error(const std::string& message, const char* sqlstate) {
    return Error(message, sqlstate, "", "", true);
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
    // conflictmode strict: the key's first operation in the batch was a write that a later
    // erase() superseded. One operation at a time, that write fails if the key was in the table
    // before the batch (23505), so it is checked when the batch is sent (see check_superseded).
    std::uint64_t superseded_row_number = 0;
    Row superseded_values;  // as `values`
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

// refused: the server answered the question with an error (no privilege on txid_status(), a
// statement_timeout), which asking again at once would not change.
enum class CommitOutcome { committed, aborted, unreachable, refused, unknown };

// A row (or delete) that failed on its own in isolation; thrown internally in strict mode to name
// the batch's bad row.
struct FoundBadRow {
    const Slot* slot;
    bool is_delete;
    Error error;
    std::uint64_t row_number = 0;  // when not the slot's own: its superseded write's
};

// Part of a batch sent as statements of its own: deletes or writes.
struct Step {
    bool deletes = false;
    std::vector<const Slot*> slots;
};
using Plan = std::vector<Step>;

}  // namespace pg_ingest::detail::writer_internal

namespace pg_ingest {

// The writer's modules name these unqualified, as Writer::Impl does.
using detail::writer_internal::back_off_wait;
using detail::writer_internal::Batch;
using detail::writer_internal::Clock;
using detail::writer_internal::CommitOutcome;
using detail::writer_internal::FoundBadRow;
using detail::writer_internal::KeyIndex;
using detail::writer_internal::Plan;
using detail::writer_internal::Slot;
using detail::writer_internal::Step;
using detail::writer_internal::usage_error;
using detail::writer_internal::WriteStatement;

// Hidden: as a member of the exported Writer it would otherwise be exported with it, and its
// methods are no part of the library's ABI.
struct __attribute__((visibility("hidden"))) Writer::Impl {
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
    std::vector<bool> identity_always;  // GENERATED ALWAYS identity: written, never updated
    // conflictmode upsert with updatecolumns: per column, whether it is one of them. A key
    // written again in a batch then keeps its first write's other columns, as applying the
    // writes one at a time would (the first inserts the row, the later ones update only these).
    std::vector<bool> partial_update;
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
    // SELECT of the positions in a VALUES list of (key, position) whose key is in the table.
    std::string exists_prefix, exists_suffix;
    std::string key_tuple;

    std::mutex batch_mutex;
    // Held around every call of hooks.on_reject: write() reports the rows it refuses on the
    // caller's thread while the writer's thread reports a batch's, and the hook is called by
    // one thread at a time.
    std::mutex reject_hook_mutex;
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
        detail::log_to(hooks.on_log, options.verbose, level, message);
    }

    std::string table_label() const { return schema.schema_name() + "." + schema.table_name(); }

    void open(std::string_view table, std::vector<std::string> requested);
    void build_sql(const Connection& connection);

    // -- buffering
    void add_write(Row row);
    void merge_update_columns(Slot& existing, Slot& fresh, std::uint64_t number,
                              std::size_t& bytes);
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
    // Applies `plan` (the batch's `deletes` and `writes`, in steps) in one transaction and
    // commits it. `isolate`: row by row where statements fail (isolate_plan); the rows that
    // still fail are `rejects`, or with `strict` thrown as FoundBadRow (nothing committed).
    // `written`: rows of `writes` the server inserted or updated (the statements' counts).
    void run_attempt(Connection& connection, const std::vector<const Slot*>& deletes,
                     const std::vector<const Slot*>& writes, const Plan& plan,
                     Clock::time_point deadline, bool isolate, bool strict, bool conflict_fallback,
                     std::vector<RejectedRow>& rejects, std::uint64_t& written);
    void apply_deletes(Connection& connection, const std::vector<const Slot*>& slots,
                       std::size_t begin, std::size_t end, Clock::time_point deadline);
    // Locks the existing rows of every key of the batch, in the server's key order, before its
    // deletes and writes (see run_attempt).
    void lock_keys(Connection& connection, const std::vector<const Slot*>& deletes,
                   const std::vector<const Slot*>& writes, Clock::time_point deadline);
    // conflictmode strict: the superseded writes (Slot::superseded_row_number) among `deletes`
    // whose key is in the table, each as the 23505 it would have failed with (in row order).
    // First in the transaction: it sees the table as it was before the batch. Only where the key
    // is a unique index's (without one, the write would not have failed).
    std::vector<FoundBadRow> check_superseded(Connection& connection,
                                              const std::vector<const Slot*>& deletes,
                                              Clock::time_point deadline);
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

}  // namespace pg_ingest
