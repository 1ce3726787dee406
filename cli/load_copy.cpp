// pg_ingest load --mode copy: input text streamed through COPY, no per-value parsing.
#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/copy.hpp>
#include <pg_ingest/error.hpp>

#include "batch_queue.hpp"
#include "common.hpp"
#include "fields.hpp"
#include "load.hpp"

namespace pg_ingest::cli {

namespace {

// Without --batch-size the input still moves in pieces of this size.
constexpr std::uint64_t k_stream_records = 10000;
constexpr std::size_t k_stream_bytes = 1 << 20;

std::string copy_statement(const LoadSettings& s) {
    std::string sql = "COPY " + s.table.quoted();
    if (!s.columns.empty()) {
        sql += " (";
        for (std::size_t i = 0; i < s.columns.size(); ++i) {
            sql += (i == 0 ? "" : ", ") + quote_identifier(s.columns[i]);
        }
        sql += ")";
    }
    sql += " FROM STDIN WITH (" + s.format.sql_options();
    // ON_ERROR needs ON_CONFLICT; 'strict' keeps plain COPY's semantics (a duplicate key fails).
    const std::string conflict = s.conflict == "none" && s.ignore_errors ? "strict" : s.conflict;
    if (conflict != "none") {
        sql += ", ON_CONFLICT " + quote_literal(conflict);
        auto list = [](const std::vector<std::string>& columns) {
            std::string text;
            for (const auto& column : columns) {
                text += (text.empty() ? "" : ", ") + quote_identifier(column);
            }
            return quote_literal(text);
        };
        if (!s.conflict_columns.empty()) {
            sql += ", CONFLICT_COLUMNS " + list(s.conflict_columns);
        }
        if (!s.update_columns.empty()) {
            sql += ", UPDATE_COLUMNS " + list(s.update_columns);
        }
    }
    if (s.ignore_errors) {
        sql += ", ON_ERROR 'ignore'";
    }
    return sql + ")";
}

bool uses_on_conflict(const LoadSettings& s) {
    return s.conflict != "none" || s.ignore_errors;
}

// The records of one COPY (one unit) and where they came from.
struct Unit {
    std::vector<Batch> batches;  // data kept only when rejects may need matching
    std::uint64_t records = 0;
};

// Maps the line numbers the server reports (CONTEXT "line N", ingest.last_copy_rejects()) to
// input records. PostgreSQL (CopyReadLineText) counts a line per record plus, in CSV only, the
// line breaks inside quotes of one kind: '\n' in a stream with LF line ends, '\r' with CRLF or
// CR ones and inside the first record (the line end is not known yet). It reports a record at
// its last line. Lookups must come in non-decreasing line order.
class LineLocator {
  public:
    LineLocator(const Unit& unit, const std::vector<std::string>& sources, bool csv)
        : m_unit(&unit), m_sources(&sources), m_csv(csv) {
        for (const Batch& batch : unit.batches) {
            if (batch.records > 0) {
                m_eol = batch.first_eol;
                break;
            }
        }
    }

    RecordOrigin at(std::uint64_t line) {
        if (line < m_line) {
            *this = LineLocator(*m_unit, *m_sources, m_csv);  // out of order: start over
        }
        while (m_batch < m_unit->batches.size()) {
            const Batch& batch = m_unit->batches[m_batch];
            if (m_record >= batch.records) {
                ++m_batch;
                m_record = 0;
                m_multiline = 0;
                continue;
            }
            const std::uint64_t record_end = m_line + 1 + counted(batch);
            if (record_end >= line) {
                return batch.origin(*m_sources, m_record);
            }
            m_line = record_end;
            m_first = false;
            if (m_multiline < batch.multiline.size() &&
                batch.multiline[m_multiline].first == m_record) {
                ++m_multiline;
            }
            ++m_record;
        }
        return {m_sources->size() == 1 ? m_sources->front() : "", 0, 0};
    }

  private:
    // The line breaks the server counts inside the current record.
    std::uint64_t counted(const Batch& batch) const {
        if (!m_csv || m_multiline >= batch.multiline.size() ||
            batch.multiline[m_multiline].first != m_record) {
            return 0;
        }
        const RecordShape& shape = batch.multiline[m_multiline].second;
        return m_first || m_eol != LineEnd::lf ? shape.inner_cr : shape.inner_lf;
    }

    const Unit* m_unit;
    const std::vector<std::string>* m_sources;
    bool m_csv;
    LineEnd m_eol = LineEnd::lf;  // the stream's line ends, from its first record
    std::size_t m_batch = 0;
    std::uint64_t m_record = 0;
    std::size_t m_multiline = 0;
    std::uint64_t m_line = 0;  // the server's line count at the end of the previous record
    bool m_first = true;
};

// What one COPY did, read in its transaction: recorded once that commits.
struct UnitOutcome {
    LoadTotals totals;
    std::optional<Result> rejected;  // its rejected rows, when they go to a reject file
};

// Before the transaction of COPYs: with a reject file every rejected line goes into it, so the
// server must keep them all (in the session, until read). Without one they are only counted:
// it keeps none, or a wrong --format would have it hold every line of the input in memory.
void prepare_session(Connection& connection, const LoadSettings& s) {
    if (s.ignore_errors) {
        connection.execute(!s.reject_file.empty() ? "SET ingest.copy_rejects_kept = 2147483647"
                                                  : "SET ingest.copy_rejects_kept = 0");
    }
}

// Runs one COPY inside the caller's transaction, with the reads of its counts and rejects:
// `next` supplies the batches. Throws Error (with the input position added when the server
// named a line).
UnitOutcome copy_in_transaction(Connection& connection, const std::string& sql,
                                const LoadSettings& s, const std::vector<std::string>& sources,
                                const std::function<bool(Batch&)>& next, bool keep_data,
                                Unit& unit) {
    const bool csv = s.input_format == InputFormat::csv;
    const bool fetch_rejects = s.ignore_errors && !s.reject_file.empty();
    CopyIn copy(connection, sql);
    Result result;
    try {
        Batch batch;
        while (next(batch)) {
            unit.records += batch.records;
            unit.batches.push_back(std::move(batch));
            batch = Batch();
            Batch& sent = unit.batches.back();
            copy.write(sent.data);
            if (!keep_data) {
                sent.data.clear();
                sent.data.shrink_to_fit();
            }
        }
        result = copy.finish();
    } catch (const Error& error) {
        if (const auto line = copy.failed_line()) {
            const RecordOrigin origin = LineLocator(unit, sources, csv).at(*line);
            if (!origin.source.empty()) {
                throw Error(std::string(error.what()) + " (" + where(origin) + ")",
                            error.sqlstate(), error.detail(), error.hint(),
                            error.connection_usable());
            }
        }
        throw;
    }
    LoadTotals unit_totals;
    unit_totals.rows_read = unit.records;
    if (uses_on_conflict(s)) {
        const Result stats = connection.execute(
            "SELECT inserted, updated, skipped, rejected FROM ingest.last_copy_stats()");
        unit_totals.inserted = std::stoull(stats.get(0, 0).value_or("0"));
        unit_totals.updated = std::stoull(stats.get(0, 1).value_or("0"));
        unit_totals.skipped = std::stoull(stats.get(0, 2).value_or("0"));
        unit_totals.rejected = std::stoull(stats.get(0, 3).value_or("0"));
        // Where the reader cannot see an end-of-data marker inside a record (text in an
        // encoding whose characters may end in a backslash byte), counts short of the rows sent
        // mean the server stopped reading early. Not checked elsewhere: a BEFORE INSERT trigger
        // that returns NULL also leaves rows uncounted, as for plain COPY.
        const std::uint64_t applied =
            unit_totals.inserted + unit_totals.updated + unit_totals.skipped + unit_totals.rejected;
        if (s.ascii_trail_bytes && s.input_format == InputFormat::text && applied < unit.records) {
            throw Error("the server accounted for " + std::to_string(applied) + " of the " +
                        std::to_string(unit.records) +
                        " rows sent (it stopped reading early at a \\. in the data, or a "
                        "trigger skipped rows); nothing of this COPY was committed");
        }
    } else {
        unit_totals.inserted = result.affected_rows();
    }
    std::optional<Result> rejected;
    if (fetch_rejects && unit_totals.rejected > 0) {
        rejected = connection.execute(
            "SELECT line_number, raw_line, sqlstate, message FROM ingest.last_copy_rejects() "
            "ORDER BY line_number");
        if (rejected->rows() != unit_totals.rejected) {
            throw Error("the server listed " + std::to_string(rejected->rows()) + " of the " +
                        std::to_string(unit_totals.rejected) +
                        " rejected rows; nothing of this COPY was committed");
        }
    }
    return UnitOutcome{unit_totals, std::move(rejected)};
}

// Commits the transaction of COPYs. A COMMIT whose answer is lost with the connection throws
// Error 08007 (not retryable: it may have committed).
void commit_copies(Connection& connection) {
    try {
        const Result done = connection.execute("COMMIT");
        if (done.command_tag() != "COMMIT") {
            throw Error("the COPY's transaction was rolled back at COMMIT (" + done.command_tag() +
                            "); nothing of it was committed",
                        "40000", "", "", false);
        }
    } catch (const Error& error) {
        if (error.connection_usable()) {
            throw;  // the server answered: not committed
        }
        throw Error(
            "the connection was lost while the COPY committed: it may or may not have "
            "committed (" +
                std::string(error.what()) + ")",
            "08007", "",
            "Check the target for these rows before loading them again; a COPY ON "
            "CONFLICT upsert or ignore can be run again safely.",
            false);
    }
}

// A committed unit: counted before its rejects are written, so that a reject file that fails
// then does not hide the commit.
void record_unit(const Unit& unit, UnitOutcome& outcome, const LoadSettings& s,
                 const std::vector<std::string>& sources, RejectSink& rejects, LoadTotals& totals,
                 Progress& progress) {
    LoadTotals& unit_totals = outcome.totals;
    if (s.options.verbose) {  // --option verbose: a line per committed COPY, also under --quiet
        progress.log_line("pg_ingest load: committed a COPY of " + std::to_string(unit.records) +
                          (unit.records == 1 ? " record: " : " records: ") +
                          std::to_string(unit_totals.inserted) + " inserted, " +
                          std::to_string(unit_totals.updated) + " updated, " +
                          std::to_string(unit_totals.skipped) + " skipped, " +
                          std::to_string(unit_totals.rejected) + " rejected");
    }
    unit_totals.committed_batches = 1;
    for (const Batch& batch : unit.batches) {
        unit_totals.committed.push_back(committed_range(batch));
    }
    totals.add(unit_totals);
    if (outcome.rejected) {
        const Result& rejected = *outcome.rejected;
        LineLocator locator(unit, sources, s.input_format == InputFormat::csv);
        for (std::size_t r = 0; r < rejected.rows(); ++r) {
            const RecordOrigin origin = locator.at(std::stoull(rejected.get(r, 0).value_or("0")));
            rejects.add(origin, rejected.get(r, 2).value_or(""), rejected.get(r, 3).value_or(""),
                        rejected.get(r, 1).value_or(""));
        }
    }
}

// Runs one COPY in a transaction of its own, so that a failure anywhere before the COMMIT
// leaves nothing loaded (and the unit may be sent again). Rejects and totals are recorded only
// once committed.
void copy_unit(Connection& connection, const std::string& sql, const LoadSettings& s,
               const std::vector<std::string>& sources, const std::function<bool(Batch&)>& next,
               bool keep_data, Unit& unit, RejectSink& rejects, LoadTotals& totals,
               Progress& progress) {
    prepare_session(connection, s);
    connection.execute("BEGIN");
    UnitOutcome outcome = copy_in_transaction(connection, sql, s, sources, next, keep_data, unit);
    commit_copies(connection);
    record_unit(unit, outcome, s, sources, rejects, totals, progress);
    rejects.flush();  // committed: its rejects must survive whatever happens next
}

}  // namespace

void load_with_copy(const LoadSettings& s, const ConnectionOptions& options, InputReader& reader,
                    Progress& progress, RejectSink& rejects, LoadTotals& totals) {
    const std::string sql = copy_statement(s);
    const auto& sources = reader.sources();

    if (s.batch_size == 0) {
        // One transaction for the whole input: one COPY per source, since each source keeps
        // its own line ends (the server takes a COPY stream's from its first line).
        reader.set_stream_per_source();
        Connection connection = Connection::connect(options, s.connect_timeout);
        mark_connected();
        // A signal cancels the COPY in flight, also while it waits on a lock or applies its
        // rows at the end of input; the check below catches it between batches.
        InterruptCanceller canceller;
        canceller.add(connection.cancel_token());
        prepare_session(connection, s);
        connection.execute("BEGIN");
        std::vector<Unit> units;
        std::vector<UnitOutcome> outcomes;
        units.reserve(sources.size());
        Batch pending;
        bool have_pending = reader.next(pending, k_stream_records, k_stream_bytes);
        try {
            do {  // at least one COPY, also for no rows
                const std::size_t source = have_pending ? pending.source_index : 0;
                units.emplace_back();
                outcomes.push_back(copy_in_transaction(
                    connection, sql, s, sources,
                    [&](Batch& batch) {
                        if (interrupted()) {
                            // Thrown inside the COPY: it is aborted and its transaction rolled
                            // back.
                            throw std::runtime_error(
                                "interrupted by a signal: the COPY was rolled back, nothing was "
                                "loaded");
                        }
                        if (!have_pending || pending.source_index != source) {
                            return false;
                        }
                        batch = std::move(pending);
                        pending = Batch();
                        progress.add(batch.records, batch.data.size());
                        have_pending = reader.next(pending, k_stream_records, k_stream_bytes);
                        return true;
                    },
                    false, units.back()));
            } while (have_pending);
            commit_copies(connection);
        } catch (const Error& error) {
            if (interrupted() && error.sqlstate() == "57014") {
                throw std::runtime_error(
                    "interrupted by a signal: the COPY was cancelled and rolled back, nothing "
                    "was loaded");
            }
            throw;
        }
        for (std::size_t i = 0; i < units.size(); ++i) {
            record_unit(units[i], outcomes[i], s, sources, rejects, totals, progress);
        }
        rejects.flush();
        return;
    }

    // Batches, each its own COPY and transaction, over s.parallel connections.
    BatchQueue queue(2 * s.parallel);
    std::mutex totals_mutex;
    std::exception_ptr failure;
    auto fail = [&](std::exception_ptr error) {
        std::lock_guard<std::mutex> lock(totals_mutex);
        if (!failure) {
            failure = error;
        }
    };
    auto merge = [&](const LoadTotals& unit_totals) {
        std::lock_guard<std::mutex> lock(totals_mutex);
        totals.add(unit_totals);
    };
    // A signal cancels the batches in flight (a COPY waiting on a lock, say): they roll back.
    InterruptCanceller canceller;
    auto worker = [&] {
        std::optional<Connection> connection;
        std::optional<int> registered;
        Batch batch;
        try {
            while (queue.pop(batch)) {
                if (interrupted()) {
                    queue.close(true);  // not started: dropped (feed_and_join reports it)
                    break;
                }
                // A COPY of its own: a batch starting with a stray line end would take its kind
                // for the stream's (one COPY over the input fails on it).
                refuse_stray_line_ends(batch, sources, s.input_format);
                for (int attempt = 0;; ++attempt) {
                    Unit unit;
                    LoadTotals unit_totals;
                    try {
                        if (!connection || !connection->is_open()) {
                            if (registered) {
                                canceller.remove(*registered);
                            }
                            connection.emplace(Connection::connect(options, s.connect_timeout));
                            mark_connected();
                            registered = canceller.add(connection->cancel_token());
                        }
                        bool sent = false;
                        try {
                            copy_unit(
                                *connection, sql, s, sources,
                                [&](Batch& out) {
                                    if (sent) {
                                        return false;
                                    }
                                    out = batch;  // kept for a retry
                                    sent = true;
                                    return true;
                                },
                                false, unit, rejects, unit_totals, progress);
                        } catch (...) {
                            // Committed, then its rejects could not be written: it counts.
                            if (unit_totals.committed_batches > 0) {
                                merge(unit_totals);
                            }
                            throw;
                        }
                    } catch (const Error& error) {
                        // Safe to send again: nothing of it committed (a lost COMMIT is 08007,
                        // not retryable).
                        if (unit_totals.committed_batches > 0 || !error.retryable() ||
                            attempt >= s.options.max_retry_times || interrupted()) {
                            throw;
                        }
                        connection.reset();
                        // Doubling from retrywaittime, at most 30 s (maxretrytimes may be large).
                        const auto wait =
                            s.options.retry_wait_time * (1LL << std::min(attempt, 16));
                        std::this_thread::sleep_for(
                            std::min<std::chrono::milliseconds>(wait, std::chrono::seconds(30)));
                        continue;
                    }
                    progress.add(batch.records, batch.data.size());
                    merge(unit_totals);
                    break;
                }
            }
        } catch (const Error& error) {
            // Cancelled by the signal: the batch rolled back, as feed_and_join() then reports.
            if (!(interrupted() && error.sqlstate() == "57014")) {
                fail(std::current_exception());
            }
            queue.close(true);
        } catch (...) {
            fail(std::current_exception());
            queue.close(true);
        }
    };
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < s.parallel; ++i) {
        threads.emplace_back(worker);
    }
    feed_and_join(reader, s.batch_size, s.batch_bytes, queue, threads, fail, failure);
}

}  // namespace pg_ingest::cli
