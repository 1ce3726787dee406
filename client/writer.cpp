#include <pg_ingest/writer.hpp>

#include <algorithm>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "writer_impl.hpp"

namespace pg_ingest {

namespace {

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

void put16(std::string& out, std::uint16_t v) {
    out += static_cast<char>(v >> 8);
    out += static_cast<char>(v & 0xff);
}

}  // namespace

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

namespace {
// The [offset, end) of each field of an encoded tuple (int16 count, then per field an int32
// length, -1 for NULL, and that many bytes), starting at `at`.
std::vector<std::pair<std::size_t, std::size_t>> field_spans(const std::string& data,
                                                             std::size_t at, std::size_t count) {
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    spans.reserve(count);
    std::size_t pos = at + 2;
    for (std::size_t i = 0; i < count; ++i) {
        std::uint32_t len = 0;
        for (int b = 0; b < 4; ++b) {
            len = (len << 8) | static_cast<unsigned char>(data[pos + static_cast<std::size_t>(b)]);
        }
        const std::size_t end = pos + 4 + (len == 0xFFFFFFFFu ? 0 : static_cast<std::size_t>(len));
        spans.emplace_back(pos, end);
        pos = end;
    }
    return spans;
}
}  // namespace

// conflictmode upsert with updatecolumns, a key written again: the slot's write becomes the
// earlier write with the new write's update columns (a new encoding at the end of the buffer;
// the new write's own bytes are dropped by the caller). Its row number is the new write's.
void Writer::Impl::merge_update_columns(Slot& existing, Slot& fresh, std::uint64_t number,
                                        std::size_t& bytes) {
    const std::size_t n = column_names.size();
    const auto old_spans = field_spans(batch.data, existing.fields_at, n);
    const auto new_spans = field_spans(batch.data, fresh.fields_at, n);
    std::string merged;
    merged.reserve(existing.fields_size + fresh.fields_size);
    merged.append(batch.data, existing.fields_at, 2);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& span = partial_update[i] ? new_spans[i] : old_spans[i];
        merged.append(batch.data, span.first, span.second - span.first);
    }
    if (keep_values) {
        for (std::size_t i = 0; i < n; ++i) {
            if (partial_update[i]) {
                existing.values[i] = std::move(fresh.values[i]);
            }
        }
    }
    batch.data.resize(fresh.fields_at);  // the new write's bytes, at the end
    existing.fields_at = batch.data.size();
    existing.fields_size = merged.size();
    batch.data += merged;
    existing.row_number = number;
    bytes = merged.size() - 2;
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
    // A NULL key is the caller's error in every mode (thrown, the row not taken).
    for (const std::size_t k : key_positions) {
        if (row[k].is_null()) {
            throw usage_error(where(k) + ": NULL in a key column", "23502");
        }
    }
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
            append_key_bytes(row[k], types[k], slot.key);
        }
    } catch (const Error& error) {
        batch.data.resize(start);
        // exceptionmode=ignore: a value that does not fit its column (class 22) or a NULL in a
        // NOT NULL column is the row's own error, reported and counted as the server's refusals
        // are; the row takes its number. A wrong kind of value (42804) stays the caller's.
        const std::string& state = error.sqlstate();
        if (options.exception_mode != ExceptionMode::ignore ||
            (state.rfind("22", 0) != 0 && state != "23502")) {
            throw;
        }
        ++row_counter;
        {
            std::lock_guard<std::mutex> metrics_lock(metrics_mutex);
            ++metrics.rows_in;
            ++metrics.rows_rejected;
        }
        lock.unlock();
        // Its SQLSTATE only: the message may quote the value.
        log(LogLevel::debug, "row " + std::to_string(number) + " of " + table_label() +
                                 " rejected when written [" + state + "]");
        if (hooks.on_reject) {
            std::lock_guard<std::mutex> hook_lock(reject_hook_mutex);
            hooks.on_reject(RejectedRow{number, false, state, error.what(), std::move(row)});
        }
        return;
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
                if (existing.has_write && !partial_update.empty()) {
                    merge_update_columns(existing, slot, number, bytes);
                    taken = true;  // the merged bytes, now where the new write's were
                    break;
                }
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
            std::lock_guard<std::mutex> hook_lock(reject_hook_mutex);
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
        if (options.conflict_mode == ConflictMode::strict && slot->has_write && !slot->deleted) {
            slot->superseded_row_number = slot->row_number;
            slot->superseded_values = std::move(slot->values);
        }
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
                 connection,
                 ConnectionPool::Settings{
                     // Checked before the pool is built: a bad connectionmaxactive is the
                     // Error (22023) naming it that every other bad option gives.
                     (options.validate(), options.connection_max_active),
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
