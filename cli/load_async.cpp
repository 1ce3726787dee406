// pg_ingest load --async: stage into async load jobs, submit, wait.
#include <algorithm>
#include <stdexcept>

#include <pg_ingest/async_job.hpp>
#include <pg_ingest/async_loader.hpp>
#include <pg_ingest/connection.hpp>
#include <pg_ingest/error.hpp>

#include "common.hpp"
#include "fields.hpp"
#include "load.hpp"

namespace pg_ingest::cli {

namespace {

constexpr std::uint64_t k_chunk_records = 50000;
constexpr std::size_t k_chunk_bytes = 8u << 20;

// Where the rows given to the loader came from, to find the input line of a row a staging error
// or a job's reject names (the loader counts rows over its stage() calls). Per batch its place;
// per record with line breaks inside, 8 bytes (its index and its line breaks), up to
// k_max_breaks of them in all: past that, rows are named by record number without a line.
class StagedRows {
  public:
    void add(const Batch& batch) {
        Placed placed;
        placed.source_index = batch.source_index;
        placed.first_record = batch.first_record;
        placed.first_line = batch.first_line;
        placed.first_break = m_breaks.size();
        placed.lines_known = m_breaks.size() + batch.multiline.size() <= k_max_breaks;
        if (placed.lines_known) {
            for (const auto& [index, shape] : batch.multiline) {
                m_breaks.push_back(Break{static_cast<std::uint32_t>(index),
                                         static_cast<std::uint32_t>(shape.newlines)});
            }
        }
        placed.end_break = m_breaks.size();
        m_first_rows.push_back(m_rows + 1);
        m_rows += batch.records;
        m_batches.push_back(placed);
    }

    // The origin of staged row `row` (1-based); empty source when not known.
    RecordOrigin origin(std::uint64_t row, const std::vector<std::string>& sources) const {
        auto after = std::upper_bound(m_first_rows.begin(), m_first_rows.end(), row);
        if (row == 0 || row > m_rows || after == m_first_rows.begin()) {
            return {"", 0, 0};
        }
        const std::size_t at = static_cast<std::size_t>(after - m_first_rows.begin()) - 1;
        const Placed& placed = m_batches[at];
        const std::uint64_t index = row - m_first_rows[at];
        RecordOrigin origin{
            placed.source_index < sources.size() ? sources[placed.source_index] : "?",
            placed.first_record + index, 0};
        if (placed.lines_known) {
            std::uint64_t extra = 0;
            for (std::size_t b = placed.first_break; b < placed.end_break; ++b) {
                if (m_breaks[b].index >= index) {
                    break;
                }
                extra += m_breaks[b].newlines;
            }
            origin.line = placed.first_line + index + extra;
        }
        return origin;
    }

  private:
    static constexpr std::size_t k_max_breaks = std::size_t{1} << 23;  // 64 MiB
    struct Break {
        std::uint32_t index;     // in its batch (a chunk holds at most 8 MiB)
        std::uint32_t newlines;  // line breaks inside the record
    };
    struct Placed {
        std::size_t source_index = 0;
        std::uint64_t first_record = 0;
        std::uint64_t first_line = 0;
        std::size_t first_break = 0;
        std::size_t end_break = 0;
        bool lines_known = true;
    };
    std::vector<Placed> m_batches;
    std::vector<Break> m_breaks;
    std::vector<std::uint64_t> m_first_rows;
    std::uint64_t m_rows = 0;
};

// A loader call, with the input file and line added to an error the server raised on one row.
template <typename Call>
auto located(const StagedRows& staged, const std::vector<std::string>& sources, Call&& call)
    -> decltype(call()) {
    try {
        return call();
    } catch (const Error& error) {
        const RecordOrigin origin = staged.origin(error.row_number(), sources);
        if (origin.source.empty()) {
            throw;
        }
        // The input's file and line say it better than the loader's row count.
        std::string message = error.what();
        const std::string counted = " (staged row " + std::to_string(error.row_number()) + ")";
        if (message.size() >= counted.size() &&
            message.compare(message.size() - counted.size(), counted.size(), counted) == 0) {
            message.resize(message.size() - counted.size());
        }
        Error out(message + " (" + where(origin) + ")", error.sqlstate(), error.detail(),
                  error.hint(), error.connection_usable());
        out.set_row_number(error.row_number());
        throw out;
    }
}

}  // namespace

void load_async(const LoadSettings& s, const ConnectionOptions& connection, InputReader& reader,
                Progress& progress, RejectSink& rejects, LoadTotals& totals) {
    AsyncLoaderOptions options = AsyncLoaderOptions::from(s.options, s.table);
    options.job.conflict_mode = s.conflict;
    options.job.conflict_columns = s.conflict_columns;
    options.job.update_columns = s.update_columns;
    options.job.exception_mode = s.ignore_errors ? "ignore" : "strict";
    options.columns = s.columns;
    options.format = s.format;
    options.parallelism = s.parallel;
    options.connect_timeout = s.connect_timeout;
    options.poll_interval = std::chrono::milliseconds(500);
    // Info lines (jobs begun, submitted, ended) come only with --option verbose, which asked for
    // them also under --quiet; warnings (a retry) not under --quiet.
    options.on_log = [&progress, quiet = s.quiet](LogLevel level, const std::string& message) {
        if (!(quiet && (level == LogLevel::warning || level == LogLevel::error))) {
            progress.log_line("pg_ingest load: " + message);
        }
    };

    AsyncLoader loader(connection, options);
    mark_connected();
    progress.set_status("staging");
    // In slices of a second, so that a signal ends a call that waits on a lock (the target
    // locked by another session) soon: a slice that runs out repeats the call, which then
    // carries on (AsyncLoader's deadlines).
    const auto in_slices = [](const char* what, const auto& call) {
        while (true) {
            const auto slice = Connection::Clock::now() + std::chrono::seconds(1);
            try {
                call(slice);
                return;
            } catch (const Error& error) {
                if (error.sqlstate() != "57014" || Connection::Clock::now() < slice) {
                    throw;
                }
            }
            if (interrupted()) {
                throw std::runtime_error(std::string("interrupted by a signal ") + what);
            }
        }
    };
    in_slices("while beginning the first job: nothing was staged",
              [&](Connection::Clock::time_point slice) { loader.begin(s.job_key, slice); });
    const auto& sources = reader.sources();
    StagedRows staged;
    Batch batch;
    const std::uint64_t chunk_records = s.batch_size > 0 ? s.batch_size : k_chunk_records;
    while (reader.next(batch, chunk_records, k_chunk_bytes)) {
        if (interrupted()) {
            // ~AsyncLoader leaves the open job INIT (a re-run with --job-key stages it again).
            throw std::runtime_error(
                "interrupted by a signal while staging: the open job was not submitted" +
                std::string(loader.job_ids().empty()
                                ? ""
                                : " (jobs submitted before it continue; see pg_ingest jobs)"));
        }
        // Each chunk is a COPY of its own: a chunk starting with a stray line end would take
        // its kind for the stream's (one COPY over the input fails on it).
        refuse_stray_line_ends(batch, sources, s.input_format);
        const std::uint64_t records = batch.records;
        const std::size_t bytes = batch.data.size();
        staged.add(batch);
        located(staged, sources, [&] { return loader.stage(std::move(batch.data), records); });
        progress.add(records, bytes);
        totals.rows_read += records;
        batch = Batch();
    }
    located(staged, sources, [&] {
        in_slices(
            "while submitting the last job: it was not submitted (a re-run with --job-key "
            "stages it again)",
            [&](Connection::Clock::time_point slice) { loader.submit(slice); });
    });
    std::string ids;
    for (const auto id : loader.job_ids()) {
        ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    }
    progress.set_status("waiting for job" + std::string(loader.job_ids().size() == 1 ? " " : "s ") +
                        ids);
    const auto deadline =
        s.timeout ? Connection::Clock::now() +
                        std::chrono::milliseconds(static_cast<long long>(*s.timeout * 1000))
                  : Connection::Clock::time_point::max();
    // Waited in slices so that SIGINT/SIGTERM stops the waiting (not the jobs) soon.
    std::vector<AsyncJob> jobs;
    while (true) {
        try {
            jobs = located(staged, sources, [&] {
                return loader.wait(
                    std::min(deadline, Connection::Clock::now() + std::chrono::seconds(1)));
            });
        } catch (const Error& error) {
            // A slice that ended while the loader was reconnecting after a transient failure:
            // the repeated call carries on (the loader keeps its jobs).
            if (error.sqlstate() == "57014" && !interrupted() &&
                Connection::Clock::now() < deadline) {
                continue;
            }
            throw;
        }
        const bool ended = std::all_of(jobs.begin(), jobs.end(),
                                       [](const AsyncJob& job) { return is_ended(job.state); });
        if (ended || interrupted() || Connection::Clock::now() >= deadline) {
            break;
        }
    }

    if (loader.retries() > 0) {
        totals.notes.push_back(std::to_string(loader.retries()) +
                               " transient failure(s) retried (maxretrytimes): the open job was "
                               "staged again from its spool");
    }
    if (loader.chunks_skipped() > 0) {
        totals.notes.push_back(std::to_string(loader.chunks_skipped()) +
                               " chunk(s) not staged again: their job was submitted by an earlier "
                               "run with job key '" +
                               s.job_key + "'");
    }
    std::string problems;
    std::vector<std::int64_t> with_rejects;
    for (const auto& job : jobs) {
        if (!is_ended(job.state)) {
            totals.still_running.push_back(job.id);  // waiting stopped: the job goes on
            continue;
        }
        totals.inserted += static_cast<std::uint64_t>(job.rows_inserted);
        totals.updated += static_cast<std::uint64_t>(job.rows_updated);
        totals.skipped += static_cast<std::uint64_t>(job.rows_skipped);
        totals.rejected += static_cast<std::uint64_t>(job.rows_rejected);
        if (job.rows_rejected > 0) {
            with_rejects.push_back(job.id);
        }
        totals.notes.push_back("job " + std::to_string(job.id) +
                               (job.job_key.empty() ? "" : " (key " + job.job_key + ")") + ": " +
                               std::string(to_string(job.state)));
        if (job.state == JobState::finish) {
            ++totals.committed_batches;
            continue;
        }

        problems += (problems.empty() ? "" : "; ") +
                    ("job " + std::to_string(job.id) + " is " + std::string(to_string(job.state)));
        if (!job.error_message.empty()) {
            problems += ": " + job.error_sqlstate + " " + job.error_message;
        }
    }
    if (!with_rejects.empty()) {
        Connection reader_connection = Connection::connect(connection, s.connect_timeout);
        std::string list = "{";
        for (std::size_t i = 0; i < with_rejects.size(); ++i) {
            list += (i == 0 ? "" : ",") + std::to_string(with_rejects[i]);
        }
        list += "}";
        const Result rows = reader_connection.execute_params(
            "SELECT job_id, row_number, raw_row, sqlstate, message FROM ingest.async_load_reject "
            "WHERE job_id = ANY($1::bigint[]) ORDER BY job_id, row_number",
            {list});
        for (std::size_t r = 0; r < rows.rows(); ++r) {
            // The job numbers its rows in stage order from its first row, which the loader
            // knows: that row's input line. Else (not known) the job and its row number.
            const std::int64_t job_id = std::stoll(rows.get(r, 0).value_or("0"));
            const std::uint64_t row_number = std::stoull(rows.get(r, 1).value_or("0"));
            RecordOrigin origin{"job " + rows.get(r, 0).value_or(""), row_number, 0};
            if (const auto first = loader.first_row(job_id); first && row_number > 0) {
                const RecordOrigin input = staged.origin(*first + row_number - 1, sources);
                if (!input.source.empty()) {
                    origin = input;
                }
            }
            rejects.add(origin, rows.get(r, 3).value_or(""), rows.get(r, 4).value_or(""),
                        rows.get(r, 2).value_or(""));
        }
        rejects.flush();
    }
    if (!problems.empty()) {
        // Jobs still loading go on (and may commit): they are named, or the failure would read
        // as "nothing more is loaded".
        std::string running;
        for (const auto id : totals.still_running) {
            running += (running.empty() ? "" : " ") + std::to_string(id);
        }
        throw std::runtime_error(
            "async load did not finish: " + problems +
            (running.empty() ? ""
                             : "; job(s) " + running +
                                   " still loading (they go on: pg_ingest wait or cancel them)"));
    }
}

}  // namespace pg_ingest::cli
