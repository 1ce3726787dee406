// Sending one batch (Writer::Impl::send): its attempts, each one transaction; the retries of
// transient errors; a COMMIT whose outcome was lost, settled with txid_status(); and the
// isolation of rows that fail on their own (exceptionmode ignore rejects them, strict names one).
#include "writer_impl.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "exec.hpp"

namespace pg_ingest {

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

bool row_error(const Error& error) {
    return is_row_error(error);
}

// Thrown internally when the connection broke while COMMIT was in flight: the transaction may
// or may not have committed. Re-sending blindly would load an append batch twice.
struct CommitUnknown {
    std::uint64_t xid;
    Error error;
};

std::uint64_t operation_number(const Slot& slot, bool is_delete) {
    return is_delete ? slot.delete_row_number : slot.row_number;
}

// The row a failure names: its own, or the superseded write's (check_superseded).
std::uint64_t row_of(const FoundBadRow& row) {
    return row.row_number != 0 ? row.row_number : operation_number(*row.slot, row.is_delete);
}

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

// ---------------------------------------------------------------------------------------------
// Sending a batch

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
                run_attempt(*lease, deletes, writes, *plan, deadline, isolate,
                            options.exception_mode == ExceptionMode::strict, conflict_fallback,
                            rejects, written);
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
        } catch (const FoundBadRow& found) {
            // exceptionmode strict: the row that fails however the rest is applied; the
            // attempt was rolled back.
            drop = true;
            {
                std::lock_guard<std::mutex> lock(metrics_mutex);
                ++metrics.flush_failures;
                metrics.rows_discarded += sending.operations;
            }
            const std::uint64_t number = row_of(found);
            log(LogLevel::error, "batch of " + std::to_string(sending.operations) +
                                     " operations on " + table_label() +
                                     " dropped (exceptionmode strict): row " +
                                     std::to_string(number) + (found.is_delete ? " (delete)" : "") +
                                     " failed with SQLSTATE " + found.error.sqlstate() +
                                     "; nothing of the batch was committed");
            Error named("row " + std::to_string(number) + (found.is_delete ? " (delete)" : "") +
                            " of table " + table_label() + ": " + found.error.what(),
                        found.error.sqlstate(), found.error.detail(), found.error.hint(), true);
            named.set_row_number(number);
            throw named;
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
            if (row_error(error) && options.exception_mode == ExceptionMode::strict && !isolate) {
                // The row to name is searched for in the next attempt, row by row: it fails with
                // that row (FoundBadRow, below), or commits the batch should no row fail on its
                // own (the batch failed only in the order its statements took).
                log(LogLevel::info, "data error [" + error.sqlstate() + "] in a batch on " +
                                        table_label() + "; searching for the row");
                isolate = true;
                continue;
            }
            if (row_error(error) && options.exception_mode == ExceptionMode::strict) {
                // A row error the search could not pin on a row (raised outside its statements):
                // sending the batch again would fail the same way, so strict drops it, as it
                // drops a batch whose row it named.
                drop = true;
                {
                    std::lock_guard<std::mutex> lock(metrics_mutex);
                    ++metrics.flush_failures;
                    metrics.rows_discarded += sending.operations;
                }
                log(LogLevel::error, "batch of " + std::to_string(sending.operations) +
                                         " operations on " + table_label() +
                                         " dropped (exceptionmode strict): it failed with "
                                         "SQLSTATE " +
                                         error.sqlstate() +
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
        // A superseded write (check_superseded) is not one of `writes`; erase() counted it as
        // deduplicated, and rejected it is not.
        std::unordered_set<std::uint64_t> superseded;
        for (const Slot* slot : deletes) {
            if (slot->superseded_row_number != 0) {
                superseded.insert(slot->superseded_row_number);
            }
        }
        const std::uint64_t rejected_superseded = static_cast<std::uint64_t>(
            std::count_if(rejects.begin(), rejects.end(), [&](const RejectedRow& r) {
                return !r.is_delete && superseded.count(r.row_number) != 0;
            }));
        metrics.rows_deduplicated -= std::min(metrics.rows_deduplicated, rejected_superseded);
        const std::uint64_t rejected_writes =
            static_cast<std::uint64_t>(
                std::count_if(rejects.begin(), rejects.end(),
                              [](const RejectedRow& r) { return !r.is_delete; })) -
            rejected_superseded;
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
    // In row order (superseded writes are found before the rest).
    std::stable_sort(
        rejects.begin(), rejects.end(),
        [](const RejectedRow& a, const RejectedRow& b) { return a.row_number < b.row_number; });
    if (hooks.on_reject) {
        std::lock_guard<std::mutex> hook_lock(reject_hook_mutex);
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
                               Clock::time_point deadline, bool isolating, bool strict,
                               bool conflict_fallback, std::vector<RejectedRow>& rejects,
                               std::uint64_t& written) {
    written = 0;
    // The transaction id up front, so that a COMMIT whose reply is lost can be settled with
    // txid_status() on another connection instead of being re-sent blindly.
    const Result begun = detail::exec_until(connection, "BEGIN; SELECT pg_catalog.txid_current()",
                                            nullptr, deadline);
    const std::uint64_t xid = std::stoull(begun.get(0, 0).value_or("0"));
    // Writes an erase() superseded that would have failed on a key already in the table.
    const std::vector<FoundBadRow> superseded = check_superseded(connection, deletes, deadline);
    if (strict && !isolating && !superseded.empty()) {
        // Not named yet: a row of the batch issued before it may fail on its own, and one
        // operation at a time that one would fail first. The search (send) names the first.
        throw superseded.front().error;
    }
    if (statement == WriteStatement::copy_stage && !writes.empty()) {
        detail::exec_until(connection, stage_create_sql, nullptr, deadline);
    }
    if (isolating) {
        // Deferred constraints are checked per statement here: a violation found only at COMMIT
        // cannot be pinned on a row, and would fail every attempt again.
        detail::exec_until(connection, "SET CONSTRAINTS ALL IMMEDIATE", nullptr, deadline);
        std::vector<FoundBadRow> failed;
        written = isolate_plan(connection, plan, deadline, conflict_fallback, failed);
        failed.insert(failed.end(), superseded.begin(), superseded.end());
        if (strict && !failed.empty()) {
            // Each of these failed alone with every row that goes in applied: name the first one
            // issued.
            throw *std::min_element(
                failed.begin(), failed.end(),
                [](const FoundBadRow& a, const FoundBadRow& b) { return row_of(a) < row_of(b); });
        }
        for (const FoundBadRow& row : failed) {
            std::string message = row.error.what();
            if (!row.error.detail().empty()) {
                message += " (" + row.error.detail() + ")";
            }
            rejects.push_back(RejectedRow{row_of(row), row.is_delete, row.error.sqlstate(), message,
                                          row.row_number != 0 ? row.slot->superseded_values
                                          : row.is_delete     ? row.slot->key_values
                                                              : row.slot->values});
        }
    } else {
        for (const FoundBadRow& row : superseded) {
            rejects.push_back(RejectedRow{row.row_number, false, row.error.sqlstate(),
                                          row.error.what(), row.slot->superseded_values});
        }
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
    try {
        detail::exec_until(connection, "COMMIT", nullptr, deadline);
    } catch (const Error& error) {
        if (error.connection_usable() || xid == 0) {
            throw;  // the server answered: the transaction did not commit
        }
        throw CommitUnknown{xid, error};
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

namespace {

// Row errors that another row of the batch can clear, so worth one more try once the others are
// in: a foreign key a later row satisfies, a unique or exclusion constraint a later row moves out
// of the way, what a trigger checks (P0xxx). Others (bad data, NOT NULL, CHECK) are the row's
// own: it fails the same way whatever else is applied.
bool may_depend_on_other_rows(const std::string& sqlstate) {
    return sqlstate == "23503" || sqlstate == "23505" || sqlstate == "23P01" ||
           sqlstate.rfind("P0", 0) == 0;
}

// At most this many passes after the first: each retries what is still failing, so a structure
// that frees one row per pass (a chain of references ending in a bad row) stays bounded.
constexpr int k_isolation_passes = 4;

}  // namespace

// Bisection applies the first half of a failed range before the second, so a row that only a
// later row makes valid (a child before its parent under a foreign key that is not deferred, which
// one statement of both accepts) fails in its half. So the rows that failed with an error another
// row can clear are tried again, in their order (first all at once, as isolate() starts with the
// whole range), while that leaves fewer of them failing, at most k_isolation_passes times. A row
// applied in a later pass is applied (and counted) once. A delete is not tried again once its
// key's write went in: applied after it, it would undo the write that follows it in the batch.
std::uint64_t Writer::Impl::isolate_plan(Connection& connection, const Plan& plan,
                                         Clock::time_point deadline, bool conflict_fallback,
                                         std::vector<FoundBadRow>& failed) {
    failed.clear();
    std::uint64_t written = 0;
    std::unordered_set<const Slot*> written_slots;
    for (const Step& step : plan) {
        written += isolate(connection, step.slots, step.deletes, 0, step.slots.size(), deadline,
                           conflict_fallback, failed);
        if (!step.deletes) {
            written_slots.insert(step.slots.begin(), step.slots.end());
        }
    }
    for (int pass = 0; pass < k_isolation_passes && !failed.empty(); ++pass) {
        std::unordered_set<const Slot*> failed_writes;
        for (const FoundBadRow& row : failed) {
            if (!row.is_delete) {
                failed_writes.insert(row.slot);
            }
        }
        std::vector<FoundBadRow> still;  // the rows not tried again stay failed as they are
        Plan again;
        std::size_t tried = 0;
        for (const FoundBadRow& row : failed) {
            const bool write_applied = row.is_delete && written_slots.count(row.slot) != 0 &&
                                       failed_writes.count(row.slot) == 0;
            if (!may_depend_on_other_rows(row.error.sqlstate()) || write_applied) {
                still.push_back(row);
                continue;
            }
            if (again.empty() || again.back().deletes != row.is_delete) {
                again.push_back(Step{row.is_delete, {}});
            }
            again.back().slots.push_back(row.slot);
            ++tried;
        }
        if (tried == 0) {
            break;
        }
        const std::size_t kept = still.size();
        for (const Step& step : again) {
            written += isolate(connection, step.slots, step.deletes, 0, step.slots.size(), deadline,
                               conflict_fallback, still);
        }
        const bool fewer = still.size() - kept < tried;
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

}  // namespace pg_ingest
